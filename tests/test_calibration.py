"""Tests for course_lib.calibration: mixes, provenance on the model and in saved files, leak warnings,
layer statistics by sample count, the paired bootstrap over evaluation blocks."""

import copy
import math
import warnings

import pytest
import torch

from course_lib import awq, calibration, data, evaluate, gptq, quant_io
from course_lib.input_stats import InputStats
from course_lib.probes import layer_statistics
from support import random_ids

CORPORA = list(data.CORPORA)  # wiki, code and sql: every corpus ships with the course


# ---------------------------------------------------------------- mixes


@pytest.mark.parametrize("weights, n, expected", [
    ("code", 5, {"code": 5}),
    ({"wiki": 1, "code": 1}, 7, {"wiki": 4, "code": 3}),  # a tie in the remainder goes to the first listed
    ({"wiki": 0.5, "code": 0.25, "random": 0.25}, 16, {"wiki": 8, "code": 4, "random": 4}),
    ({"wiki": 2, "code": 1, "sql": 1}, 6, {"wiki": 3, "code": 2, "sql": 1}),
])
def test_mix_counts_follow_the_weights_and_sum_to_n(weights, n, expected):
    counts = calibration.mix_counts(weights, n)
    assert counts == expected and sum(counts.values()) == n


def test_mix_counts_by_largest_remainder_on_random_weights():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        w = (torch.rand(3, generator=g) + 0.05).tolist()
        n = int(torch.randint(3, 200, (1,), generator=g))
        weights = dict(zip(["wiki", "code", "random"], w))
        counts = calibration.mix_counts(weights, n)
        exact = {k: n * v / sum(w) for k, v in weights.items()}
        assert sum(counts.values()) == n
        assert all(abs(counts[k] - exact[k]) < 1 for k in weights)


@pytest.mark.parametrize("weights, n, message", [
    ({"books": 1}, 4, r"unknown calibration source 'books'"),
    ({"wiki": 0}, 4, r"weight of 'wiki' must be a positive number, got 0 \(leave a source out"),
    ({"wiki": float("nan")}, 4, r"positive number"),
    ({}, 4, r"non-empty dict"),
    ({"wiki": 1, "code": 0.01}, 8, r"\['code'\] get no window; raise n_samples"),
    ({"wiki": 1}, 0, r"n_samples must be >= 1"),
])
def test_bad_mixes_raise(weights, n, message):
    with pytest.raises(ValueError, match=message):
        calibration.mix_counts(weights, n)


def test_build_draws_each_source_from_its_calib_split_only(tokenizer):
    weights = {c: 1 for c in CORPORA} | {"random": 1}
    calib = calibration.build(tokenizer, weights, n_samples=2 * len(weights), seq_len=48, seed=3)
    assert calib.input_ids.shape == (2 * len(weights), 48) and calib.input_ids.dtype == torch.long
    assert calib.counts() == {s: 2 for s in weights} or sorted(calib.counts().items()) == sorted(
        (s, 2) for s in weights)
    streams = {c: (data.token_ids(tokenizer, c, "calib"), data.token_ids(tokenizer, c, "eval")) for c in CORPORA}
    for window, source in zip(calib.input_ids, calib.sources):
        if source == "random":
            assert int(window.max()) < len(tokenizer)
            continue
        calib_stream, eval_stream = streams[source]
        assert calibration.locate(window, calib_stream) >= 0
        assert calibration.locate(window, eval_stream) == -1
    again = calibration.build(tokenizer, weights, n_samples=2 * len(weights), seq_len=48, seed=3)
    other = calibration.build(tokenizer, weights, n_samples=2 * len(weights), seq_len=48, seed=4)
    assert torch.equal(again.input_ids, calib.input_ids) and again.sources == calib.sources
    assert not torch.equal(other.input_ids, calib.input_ids)
    assert len(set(calib.sources[:len(weights)])) > 1  # shuffled: not all of one source first


def test_recipe_is_json_data(tokenizer):
    calib = calibration.build(tokenizer, {"wiki": 3, "code": 1}, n_samples=4, seq_len=40, seed=1, check_overlap=True)
    recipe = calib.recipe()
    assert recipe["windows"] == {"wiki": 3, "code": 1} or recipe["windows"] == {"code": 1, "wiki": 3}
    assert recipe["seq_len"] == 40 and recipe["seed"] == 1
    assert set(recipe["eval_overlap"]) == set(data.available_corpora())
    assert recipe["eval_overlap"]["wiki"] == 0 and recipe["eval_overlap"]["code"] == 0


def test_calibration_set_checks_its_fields():
    with pytest.raises(ValueError, match=r"LongTensor"):
        calibration.CalibrationSet(torch.zeros(2, 8), ("wiki", "wiki"))
    with pytest.raises(ValueError, match=r"1 sources for 2 windows"):
        calibration.CalibrationSet(torch.zeros(2, 8, dtype=torch.long), ("wiki",))


# ---------------------------------------------------------------- leaks


def test_locate_finds_slices_on_token_boundaries():
    stream = torch.tensor([5, 256, 1, 7, 9, 256, 1, 7])
    assert calibration.locate(torch.tensor([256, 1, 7]), stream) == 1
    assert calibration.locate(torch.tensor([7, 9]), stream) == 3
    assert calibration.locate(torch.tensor([1, 0]), stream) == -1  # bytes 01 00 00 00 00 ... appear unaligned only
    assert calibration.locate(torch.tensor([9, 256, 1, 7, 5]), stream) == -1


def test_windows_cut_from_an_eval_split_warn_and_are_counted(tokenizer):
    eval_ids = data.token_ids(tokenizer, "code", "eval", max_tokens=3 * 64)
    leaked = torch.cat([data.calibration_batches(tokenizer, "code", 3, 64, seed=0), eval_ids.view(3, 64)])
    with pytest.warns(UserWarning, match=r"3 of 6 windows \('code'\).*share text with the eval split"):
        calib = calibration.from_token_ids(leaked, tokenizer, label="mine")
    assert calib.eval_overlap["code"] == 3 and calib.eval_overlap["wiki"] == 0
    assert calib.counts() == {"mine": 6}
    clean = data.calibration_batches(tokenizer, "wiki", 4, 64, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert calibration.from_token_ids(clean, tokenizer).eval_overlap["wiki"] == 0


def test_short_windows_hold_no_whole_run():
    assert calibration.eval_overlap(torch.zeros(2, 8, dtype=torch.long), None, corpora=("wiki",)) == {"wiki": 0}


# ---------------------------------------------------------------- provenance on the model and on disk


def tiny_calibration(model, label="wiki"):
    ids = torch.randint(0, model.config.vocab_size, (4, 24), generator=torch.Generator().manual_seed(0))
    return calibration.CalibrationSet(ids, (label,) * 4, seed=0)


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_quantizers_record_what_calibrated_them_and_saving_keeps_it(tiny_llama, tmp_path, method):
    model = tiny_llama(seed=1)
    skeleton = copy.deepcopy(model)
    calib = tiny_calibration(model)
    if method == "gptq":
        gptq.quantize_model(model, gptq.GPTQConfig(n_bits=4, group_size=32), calib=calib, progress=False)
    else:
        awq.quantize_model(model, awq.AWQConfig(n_bits=4, group_size=32, n_grid=4, clip_grid=4), calib=calib,
                           progress=False)
    assert model.quant_calibration == calib.recipe()
    path = quant_io.save_quantized(model, tmp_path / "q.safetensors")
    assert quant_io.read_calibration(path) == calib.recipe()
    loaded = quant_io.load_quantized(skeleton, path)
    assert loaded.quant_calibration == calib.recipe()


def test_a_plain_tensor_is_recorded_as_unrecorded(tiny_llama, tmp_path):
    model = tiny_llama(seed=2)
    ids = tiny_calibration(model).input_ids
    gptq.quantize_model(model, gptq.GPTQConfig(n_bits=4, group_size=32), calib=ids, progress=False)
    assert model.quant_calibration["windows"] == {"unrecorded": 4} and model.quant_calibration["seq_len"] == 24
    from course_lib import rtn
    plain = rtn.quantize_model(tiny_llama(seed=2), rtn.RTNConfig(n_bits=4, group_size=32))
    assert quant_io.read_calibration(quant_io.save_quantized(plain, tmp_path / "rtn.safetensors")) is None


def test_perplexity_warns_when_the_calibration_overlapped_that_eval_split(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.quant_calibration = {"windows": {"mine": 8}, "seq_len": 64, "seed": None, "eval_overlap": {"code": 2}}
    try:
        with pytest.warns(UserWarning, match=r"calibrated on 2 of 8 windows that share text with the 'code' eval"):
            evaluate.perplexity(model, tokenizer, "code", n_tokens=512, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            calibration.warn_if_overlapped(model, "wiki")
    finally:
        del model.quant_calibration


# ---------------------------------------------------------------- statistics by sample count


def test_layer_statistics_snapshots_equal_separate_runs(tiny_llama):
    model = tiny_llama(seed=3)
    ids = random_ids(7, 16, seed=1)
    names = ["model.layers.0.self_attn.v_proj", "model.layers.0.mlp.down_proj"]
    snaps = layer_statistics(model, names, ids, checkpoints=[2, 5, 7], batch_size=2)
    for count in (2, 5, 7):
        separate = {name: InputStats(model.get_submodule(name).in_features) for name in names}
        hooks = [model.get_submodule(name).register_forward_pre_hook(
            lambda m, args, name=name: separate[name].add(args[0])) for name in names]
        with torch.no_grad():
            model(input_ids=ids[:count])
        for h in hooks:
            h.remove()
        for name in names:
            assert snaps[name][count].n_tokens == count * 16
            torch.testing.assert_close(snaps[name][count].H, separate[name].H, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(snaps[name][count].mean_abs, separate[name].mean_abs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"checkpoints must be window counts in 1..7"):
        layer_statistics(model, names, ids, checkpoints=[8])


def test_layer_statistics_stop_after_the_deepest_hooked_layer(tiny_llama):
    model = tiny_llama(seed=4)
    calls = []
    model.lm_head.register_forward_pre_hook(lambda m, args: calls.append(1))
    model.model.layers[1].register_forward_pre_hook(lambda m, args: calls.append(2))
    layer_statistics(model, ["model.layers.0.mlp.down_proj"], torch.zeros(2, 8, dtype=torch.long), [2])
    assert calls == []  # neither block 1 nor lm_head ran


def test_mismatch_ratio_keeps_the_sign_and_refuses_what_means_nothing():
    increase = {("wiki", "code"): 3.0, ("code", "code"): 1.5, ("random", "code"): -0.75}
    assert calibration.mismatch_ratio(increase, "wiki", "code") == 2.0
    assert calibration.mismatch_ratio(increase, "code", "code") == 1.0
    assert calibration.mismatch_ratio(increase, "random", "code") == -0.5  # beat the reference off domain: a measurement
    for in_domain in (0.0, -1e-9):
        with pytest.raises(ValueError, match="not positive"):
            calibration.mismatch_ratio({("wiki", "code"): 3.0, ("code", "code"): in_domain}, "wiki", "code")
    with pytest.raises(ValueError, match="'sql' evaluated on 'code'"):
        calibration.mismatch_ratio(increase, "sql", "code")


# ---------------------------------------------------------------- uncertainty: the paired bootstrap


def test_block_sums_cut_each_window_and_keep_every_prediction():
    token_nll = torch.arange(2 * 10, dtype=torch.float32).view(2, 10)  # [2 windows, 10 predictions]
    sums, counts = calibration.block_sums(token_nll, 4)  # blocks of 4, 4, 2 in each window
    assert counts.tolist() == [4, 4, 2, 4, 4, 2]
    assert sums.tolist() == [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9, 10 + 11 + 12 + 13, 14 + 15 + 16 + 17, 18 + 19]
    assert sums.dtype == torch.float64
    whole, one = calibration.block_sums(token_nll, 50)  # a block longer than a window: one block per window
    assert one.tolist() == [10, 10] and whole.tolist() == [45, 145]
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="block"):
            calibration.block_sums(token_nll, bad)
    with pytest.raises(ValueError, match=r"\[n_windows, n_predictions\]"):
        calibration.block_sums(token_nll.reshape(-1), 4)


def test_bootstrap_resamples_blocks_paired_across_models():
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([128.0, 128, 128, 127] * 3)  # [12 blocks]
    base = counts * (2 + torch.rand(12, generator=g, dtype=torch.float64))  # [12] NLL sums of model 0
    shifted = base + 0.1 * counts  # model 1: every prediction 0.1 nats worse than model 0's
    ppl = calibration.bootstrap_perplexities(torch.stack([base, shifted]), counts, n_resamples=500, seed=3)
    assert ppl.shape == (2, 500)
    # the same blocks for both models: their ratio is exp(0.1) in every resample, not only on average
    torch.testing.assert_close(ppl[1] / ppl[0], torch.full((500,), math.exp(0.1), dtype=torch.float64))
    full = math.exp(float(base.sum() / counts.sum()))
    assert ppl[0].min() < full < ppl[0].max() and abs(float(ppl[0].median()) / full - 1) < 0.05
    assert torch.equal(ppl, calibration.bootstrap_perplexities(torch.stack([base, shifted]), counts, 500, seed=3))
    assert not torch.equal(ppl, calibration.bootstrap_perplexities(torch.stack([base, shifted]), counts, 500, seed=4))
    single = calibration.bootstrap_perplexities(base[None, :1], counts[:1], n_resamples=10)  # one block: no spread
    torch.testing.assert_close(single, torch.full((1, 10), math.exp(float(base[0] / counts[0])), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[n_models, n_blocks\]"):
        calibration.bootstrap_perplexities(base, counts)


def test_percentile_interval_and_ratio_draws():
    values = torch.arange(101, dtype=torch.float64)  # 0, 1, ..., 100
    low, high, undefined = calibration.percentile_interval(values, 0.9)
    assert (low, high, undefined) == (pytest.approx(5.0), pytest.approx(95.0), 0.0)
    low, high, undefined = calibration.percentile_interval(torch.tensor([1.0, float("nan"), 3.0, float("nan")]))
    assert undefined == 0.5 and 1.0 <= low < high <= 3.0
    assert math.isnan(calibration.percentile_interval(torch.full((4,), float("nan")))[0])
    with pytest.raises(ValueError, match="level"):
        calibration.percentile_interval(values, 95)
    ratios = calibration.ratio_draws(torch.tensor([3.0, -1.0, 2.0, 2.0]), torch.tensor([1.5, 2.0, 0.0, -0.5]))
    assert ratios[:2].tolist() == [2.0, -0.5] and torch.isnan(ratios[2:]).all()


def test_t_interval_over_seeds():
    mean, low, high = calibration.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))  # t(2 df) · s / √n
    assert calibration.t_interval([5.0]) == (5.0, 5.0, 5.0)  # one run: no spread to speak of
    # 31 values: 30 degrees of freedom, not in the table: the next lower entry (29) is used
    assert calibration.t_interval([float(i % 2) for i in range(31)])[2] > 0.5
    g, g_low, g_high = calibration.geometric_t_interval([2.0, 8.0])
    assert g == pytest.approx(4.0) and g_low < 4.0 < g_high
    with pytest.raises(ValueError, match="positive"):
        calibration.geometric_t_interval([1.0, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        calibration.t_interval([])
