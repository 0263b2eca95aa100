"""Activation capture and running statistics: what the hooks see, that the statistics are right, that hooks go away."""
import pytest
import torch
from torch import nn

from course_lib.activations import capture, channel_stats, module_stats, outlier_map, range_table
from course_lib.hooks import input_hooks, run_batches, select_modules
from course_lib.input_stats import RunningStats, stats_of
from support import random_ids


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_records_inputs_and_outputs_of_chosen_modules(tiny_llama):
    model = tiny_llama()
    names = ["model.layers.0.input_layernorm", "model.layers.0.self_attn.q_proj"]
    got = capture(model, names, random_ids(3, 8), outputs=True, batch_size=2, progress=False)
    assert set(got) == set(names)
    norm, q_proj = got[names[0]], got[names[1]]
    assert norm.inputs.shape == (24, 64) and q_proj.outputs.shape == (24, 64)
    # the norm's output is q_proj's input, and q_proj's output is its weight applied to it
    torch.testing.assert_close(q_proj.inputs, norm.outputs, rtol=0, atol=0)
    W = model.model.layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(q_proj.outputs, q_proj.inputs @ W.T, rtol=1e-5, atol=1e-6)
    assert hook_count(model) == 0


def test_capture_by_predicate_and_token_cap(tiny_llama):
    model = tiny_llama()
    got = capture(model, lambda name, m: name.endswith("down_proj"), random_ids(4, 8), max_tokens=10, progress=False)
    assert sorted(got) == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    assert all(c.inputs.shape == (10, 128) and c.outputs is None for c in got.values())


def test_running_statistics_equal_the_reference_on_the_whole_input(tiny_llama):
    model = tiny_llama()
    batches = random_ids(5, 8, seed=1)
    stored = capture(model, lambda n, m: isinstance(m, nn.Linear) and "lm_head" not in n, batches, progress=False)
    stats = channel_stats(model, batches, threshold=0.05, batch_size=2, progress=False)
    assert set(stats) == set(stored) and len(stats) == 14  # 7 linears x 2 blocks, lm_head skipped
    for name, s in stats.items():
        ref = stats_of(stored[name].inputs, threshold=0.05)
        assert s.n_tokens == ref.n_tokens == 40
        torch.testing.assert_close(s.absmax, ref.absmax, rtol=0, atol=0)
        torch.testing.assert_close(s.mean_abs, ref.mean_abs, rtol=1e-6, atol=0)
        assert torch.equal(s.outlier_count, ref.outlier_count)
        assert (s.min, s.max) == (ref.min, ref.max)
        assert s.tensor_absmax == pytest.approx(float(stored[name].inputs.abs().max()))
    assert any(s.outlier_count.sum() > 0 for s in stats.values())  # the low threshold does count something


def test_running_stats_accumulate_across_calls():
    X = torch.randn(50, 6) * torch.tensor([1.0, 1, 1, 1, 1, 20])
    running = RunningStats(threshold=6.0)
    for chunk in X.split(7):
        running.update(chunk)
    got, ref = running.result(), stats_of(X, 6.0)
    torch.testing.assert_close(got.absmax, ref.absmax, rtol=0, atol=0)
    torch.testing.assert_close(got.mean_abs, ref.mean_abs)
    assert torch.equal(got.outlier_count, ref.outlier_count) and got.outlier_count[5] > 0
    assert got.outlier_count[:5].sum() == (X[:, :5].abs() >= 6).sum()
    with pytest.raises(ValueError, match="No input was recorded"):
        RunningStats().result()


def test_hooks_are_removed_even_when_the_forward_pass_raises(tiny_llama):
    model = tiny_llama()
    model.train()

    def failing(name, X, Y):
        raise RuntimeError("boom inside a hook")

    with pytest.raises(RuntimeError, match="boom"):
        with input_hooks(model, ["model.layers.1.mlp.up_proj"], failing):
            run_batches(model, random_ids(3, 8), progress=False)
    assert hook_count(model) == 0
    assert model.training  # run_batches restored the training mode

    def bad_batches():
        yield random_ids(1, 8)
        raise RuntimeError("the data loader broke")

    with pytest.raises(RuntimeError, match="data loader"):
        module_stats(model, ["model.layers.0.mlp.up_proj"], bad_batches(), progress=False)
    assert hook_count(model) == 0


def test_module_selection_errors_say_what_exists(tiny_llama):
    model = tiny_llama()
    with pytest.raises(ValueError, match="no module 'model.layers.0.self_attn.q_prj'.*q_proj"):
        select_modules(model, ["model.layers.0.self_attn.q_prj"])
    with pytest.raises(ValueError, match="predicate selected no module"):
        select_modules(model, lambda name, m: False)
    with pytest.raises(ValueError, match="got the string"):
        select_modules(model, "model.layers.0.mlp")
    with pytest.raises(ValueError, match="token ids"):
        run_batches(model, torch.randn(2, 8), progress=False)
    assert hook_count(model) == 0


def test_range_table_and_outlier_map(tiny_llama):
    model = tiny_llama()
    with torch.no_grad():
        model.model.layers[1].post_attention_layernorm.weight[7] = 500.0  # plant an outlier channel
    stats = channel_stats(model, random_ids(2, 8), threshold=5.0, progress=False)
    rows = {r["layer_type"]: r for r in range_table(model, stats)}
    assert set(rows) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert rows["up_proj"]["n_layers"] == 2
    assert rows["up_proj"]["act_absmax"] > 10 * rows["q_proj"]["act_absmax"]
    up = [f"model.layers.{i}.mlp.up_proj" for i in range(2)]
    heat = outlier_map(stats, up)
    assert heat.shape == (2, 64)
    assert heat[1, 7] == 16  # every token of block 1 has channel 7 above the threshold
    assert heat[1].sum() - 16 < 16 and heat[0, 7] < 16  # ... and hardly anything else does
    with pytest.raises(ValueError, match="different input widths"):
        outlier_map(stats, ["model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj"])
