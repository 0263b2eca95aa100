"""AWQ: the scale and clip searches against RTN and slow references, the driver, salience (the fold: test_fold)."""
import copy

import pytest
import torch

from course_lib import rtn
from course_lib.awq import (AWQConfig, activation_stats, apply_salience, keep_columns, quantize_model,
                            random_channels, salient_channels)
from course_lib.awq_search import (alpha_grid, awq_scale, clip_to, pseudo_quantize, quantize_fp16, scaled_error,
                                   search_clip, search_clip_reference, search_scale, search_scale_module,
                                   search_scale_reference)
from course_lib.quant_io import load_quantized, save_quantized
from course_lib.quant_linear import QuantLinear
from support import random_ids


def outlier_inputs(in_features=128, n_tokens=512, seed=0):
    """X [tokens, in] with a few channels much larger than the rest, as in real activations."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n_tokens, in_features, generator=g)
    X[:, :3] *= 20
    return X


def weights(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for shape in shapes]


calib = random_ids


# ---------------------------------------------------------------- the scale search

def test_alpha_zero_is_exactly_rtn():
    X = outlier_inputs()
    (W,) = weights([(32, 128)])
    s = awq_scale(X.abs().mean(0), 0.0)
    assert torch.equal(s, torch.ones(128))
    rtn_hat = quantize_fp16(W, 3, 64, False).dequantize()
    assert torch.equal(pseudo_quantize(W * s, 3, 64, False) / s, rtn_hat)


def test_alpha_zero_through_the_driver_gives_the_rtn_model(tiny_llama):
    model = tiny_llama()
    expected = rtn.quantize_model(copy.deepcopy(model), rtn.RTNConfig(3, 32), progress=False)
    quantize_model(model, AWQConfig(3, 32, n_grid=1, clip=False), calib=calib(), progress=False)
    for name, layer in expected.named_modules():
        if isinstance(layer, QuantLinear):
            assert torch.equal(model.get_submodule(name).dequantize_weight(), layer.dequantize_weight()), name


@pytest.mark.parametrize("n_bits,group_size", [(4, 64), (3, 32), (3, "channel")])
def test_search_never_loses_to_alpha_zero_and_beats_rtn_on_outliers(n_bits, group_size):
    X = outlier_inputs()
    Ws = weights([(32, 128), (16, 128)])
    H = X.T @ X / X.shape[0]
    result = search_scale(Ws, H, X.abs().mean(0), n_bits, group_size)
    assert result.errors[result.alphas == result.best_alpha].item() <= result.errors[0].item()
    at_best = scaled_error(Ws, H, result.scale, n_bits, group_size, False)
    at_zero = scaled_error(Ws, H, torch.ones(128), n_bits, group_size, False)
    assert at_best <= at_zero * (1 + 1e-5)
    assert at_best < 0.9 * at_zero  # large input channels: scaling them clearly helps


def test_fast_search_matches_the_slow_reference():
    X = outlier_inputs(seed=1)
    Ws = weights([(24, 128), (8, 128)], seed=1)
    fast = search_scale(Ws, X.T @ X / X.shape[0], X.abs().mean(0), 4, 64, n_grid=10)
    slow = search_scale_reference(Ws, X, 4, 64, n_grid=10)
    assert torch.allclose(fast.errors, slow.errors, rtol=1e-3, atol=0)
    assert fast.best_alpha == slow.best_alpha
    assert torch.allclose(fast.scale, slow.scale, rtol=1e-5)


def test_module_objective_on_the_linears_themselves_is_the_per_linear_one():
    X = outlier_inputs(seed=4)
    Ws = weights([(24, 128), (8, 128)], seed=4)
    linears = [torch.nn.Linear(128, W.shape[0], bias=False) for W in Ws]
    with torch.no_grad():
        for linear, W in zip(linears, Ws):
            linear.weight.copy_(W)
    # the "module" is the group's linears side by side: its output error is the sum of theirs
    module = search_scale_module(lambda: torch.cat([linear(X) for linear in linears], dim=-1), linears,
                                 X.abs().mean(0), 3, 32, n_grid=8)
    slow = search_scale_reference(Ws, X, 3, 32, n_grid=8)
    assert torch.allclose(module.errors, slow.errors, rtol=1e-4, atol=0)
    assert module.best_alpha == slow.best_alpha
    assert all(torch.equal(linear.weight, W) for linear, W in zip(linears, Ws)), "weights put back"


def test_module_objective_sees_what_the_module_does_with_the_errors():
    """A gated MLP: the error of its output is not the sum of gate's and up's, and the weights come back."""
    g = torch.Generator().manual_seed(5)
    X = outlier_inputs(seed=5)
    gate, up, down = torch.nn.Linear(128, 64, bias=False), torch.nn.Linear(128, 64, bias=False), \
        torch.nn.Linear(64, 16, bias=False)
    with torch.no_grad():
        for linear in (gate, up, down):
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=g))
    before = [linear.weight.detach().clone() for linear in (gate, up, down)]

    def mlp():
        return (down(torch.nn.functional.silu(gate(X)) * up(X)), None)  # a tuple, as attention returns

    result = search_scale_module(mlp, [gate, up], X.abs().mean(0), 3, 32, n_grid=6)
    per_linear = search_scale_reference([gate.weight, up.weight], X, 3, 32, n_grid=6)
    assert result.errors.shape == (6,) and (result.errors > 0).all()
    assert not torch.allclose(result.errors, per_linear.errors, rtol=0.1)
    assert result.best_alpha == float(result.alphas[int(torch.argmin(result.errors))])
    assert all(torch.equal(linear.weight, b) for linear, b in zip((gate, up, down), before))
    # at α = 0 the module runs on the RTN weights of gate and up
    with torch.no_grad():
        reference = mlp()[0]
        gate.weight.copy_(pseudo_quantize(before[0], 3, 32, False))
        up.weight.copy_(pseudo_quantize(before[1], 3, 32, False))
        rtn_error = float(((mlp()[0].double() - reference.double()) ** 2).sum()) / X.shape[0]
    assert abs(float(result.errors[0]) - rtn_error) <= 1e-4 * rtn_error


def test_module_objective_puts_the_weights_back_on_an_error():
    (W,) = weights([(8, 128)], seed=6)
    linear = torch.nn.Linear(128, 8, bias=False)
    with torch.no_grad():
        linear.weight.copy_(W)
    calls = []

    def forward():
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("boom")
        return linear(torch.ones(4, 128))

    with pytest.raises(RuntimeError):
        search_scale_module(forward, [linear], torch.rand(128) + 0.1, 4, 64, n_grid=4)
    assert torch.equal(linear.weight, W)


def test_alpha_grid_and_scale_normalisation():
    assert torch.allclose(alpha_grid(20), torch.arange(20) / 20)
    s = awq_scale(torch.tensor([0.5, 2.0, 8.0]), 0.5)
    assert torch.allclose(s.max() * s.min(), torch.tensor(1.0))


# ---------------------------------------------------------------- the clip search

def test_clipping_never_widens_a_range():
    (W,) = weights([(32, 128)], seed=2)
    W[0, 5] = 12.0  # one outlier weight, worth clipping
    X = outlier_inputs(seed=2)
    ratio = search_clip(W, X.T @ X / X.shape[0], 3, 64)
    assert ((ratio > 0.5) & (ratio <= 1)).all() and (ratio < 1).any()
    Wg, Cg = W.reshape(32, 2, 64), clip_to(W, ratio, 64).reshape(32, 2, 64)
    assert (Cg.amax(-1) <= Wg.amax(-1)).all() and (Cg.amin(-1) >= Wg.amin(-1)).all()
    assert (quantize_fp16(clip_to(W, ratio, 64), 3, 64, False).scale <= quantize_fp16(W, 3, 64, False).scale).all()


def test_fast_clip_search_matches_the_slow_reference():
    (W,) = weights([(16, 128)], seed=3)
    X = outlier_inputs(seed=3)
    fast = search_clip(W, X.T @ X / X.shape[0], 3, 32)
    slow = search_clip_reference(W, X, 3, 32)
    assert (fast == slow).float().mean() > 0.97  # float32 H against float64 outputs: rare near-ties may differ


# ---------------------------------------------------------------- the driver

@pytest.mark.parametrize("kwargs", [dict(n_bits=1), dict(group_size=0), dict(group_size="tensor"), dict(n_grid=0),
                                    dict(clip="yes"), dict(max_shrink=1.0), dict(batch_size=0), dict(skip="lm_head"),
                                    dict(clip_skip=("",))])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        AWQConfig(**kwargs)


def test_errors_come_before_the_model_changes(tiny_llama):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="calibration set is empty"):
        quantize_model(model, calib=torch.empty(0, 16, dtype=torch.long), progress=False)
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(model, calib=None, progress=False)
    with pytest.raises(ValueError, match="does not divide"):
        quantize_model(model, AWQConfig(group_size=48), calib=calib(), progress=False)
    with pytest.raises(ValueError, match="outside"):
        quantize_model(model, AWQConfig(group_size=32, skip=()), calib=calib(), progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and len(before) == len(after)


def test_quantized_model_is_quant_linear_and_round_trips(tiny_llama, tmp_path):
    model = tiny_llama()
    curves = []
    quantize_model(model, AWQConfig(4, 32, n_grid=5), calib=calib(), progress=False,
                   on_group=lambda name, alphas, errors, best: curves.append((name, len(errors), best)))
    linears = [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    assert len(linears) == 2 * 7 and not isinstance(model.lm_head, QuantLinear)
    assert len(curves) == 2 * 3 and all(n == 5 for _, n, _ in curves)  # GQA: no v -> o group
    ids = calib(2, 12, seed=5)
    path = save_quantized(model, tmp_path / "awq.safetensors")
    reloaded = load_quantized(tiny_llama(seed=1), path)
    with torch.no_grad():
        expected = model(ids).logits
        assert torch.isfinite(expected).all()
        assert torch.equal(reloaded(ids).logits, expected)


# ---------------------------------------------------------------- salience

def test_salient_and_random_channels():
    mean_abs = torch.arange(300.0)
    assert sorted(salient_channels(mean_abs, 0.01).tolist()) == [297, 298, 299]
    assert len(random_channels(300, 0.01, torch.Generator().manual_seed(0))) == 3
    assert salient_channels(torch.ones(10), 0.01).numel() == 1


def test_keep_columns_keeps_those_columns_and_rounds_the_rest():
    (W,) = weights([(16, 128)], seed=4)
    channels = torch.tensor([3, 70])
    W_hat = keep_columns(W, channels, 3, 64)
    rtn_hat = quantize_fp16(W, 3, 64, False).dequantize()
    assert torch.equal(W_hat[:, channels], W[:, channels].half().float())
    others = torch.ones(128, dtype=torch.bool)
    others[channels] = False
    assert torch.equal(W_hat[:, others], rtn_hat[:, others])


def test_apply_salience_modes(tiny_llama):
    model = tiny_llama()
    stats = activation_stats(model, calib(), progress=False)
    top = apply_salience(copy.deepcopy(model), stats, "top", 0.05, 3, 32)
    none = apply_salience(copy.deepcopy(model), stats, "none", 0.05, 3, 32)
    name = "model.layers.0.mlp.down_proj"
    kept = salient_channels(stats[name], 0.05)
    W = model.get_submodule(name).weight
    assert torch.equal(top.get_submodule(name).weight[:, kept], W[:, kept].half().float())
    assert torch.equal(none.get_submodule(name).weight, quantize_fp16(W, 3, 32, False).dequantize())
    with pytest.raises(ValueError, match="mode"):
        apply_salience(model, stats, "best")
