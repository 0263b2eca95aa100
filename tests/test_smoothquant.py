"""SmoothQuant: the smoothing factor, the exact fold (float outputs unchanged, also on the real model), the driver."""
import copy

import pytest
import torch

from course_lib.activations import channel_stats
from course_lib.smoothquant import (
    SmoothQuantConfig, quantize_model, smooth_model, smoothed_input_absmax, smoothing_factor,
    smoothing_factor_reference,
)
from course_lib.w8a8 import W8A8Config, W8A8Linear
from course_lib.w8a8 import quantize_model as w8a8_quantize_model
from support import random_ids


def test_smoothing_factor_formula_and_balance():
    g = torch.Generator().manual_seed(0)
    act, weight = torch.rand(50, generator=g) * 30, torch.rand(50, generator=g)
    act[3], weight[4] = 0.0, 0.0  # dead channels are floored, never 0 or inf
    for alpha in (0.0, 0.5, 0.85, 1.0):
        s = smoothing_factor(act, weight, alpha)
        torch.testing.assert_close(s, smoothing_factor_reference(act, weight, alpha), rtol=1e-5, atol=0)
        assert torch.isfinite(s).all() and (s > 0).all()
    s = smoothing_factor(act, weight, 0.5)
    ok = (act > 0) & (weight > 0)
    # alpha = 0.5 balances the ranges: max|X_j / s_j| = max|W_j * s_j| = sqrt(max|X_j| max|W_j|)
    torch.testing.assert_close((act / s)[ok], (weight * s)[ok])
    torch.testing.assert_close(smoothing_factor(act, weight, 0.0)[ok], 1 / weight[ok])
    torch.testing.assert_close(smoothing_factor(act, weight, 1.0)[ok], act[ok])
    with pytest.raises(ValueError, match="both be \\[in\\]"):
        smoothing_factor(act, weight[:10])


def test_migration_leaves_the_float_model_unchanged_on_a_tiny_llama(tiny_llama):
    model = tiny_llama()
    with torch.no_grad():
        model.model.layers[0].input_layernorm.weight[5] = 40.0  # an outlier channel to migrate
    batch = random_ids(2, 16)
    stats = channel_stats(model, batch, progress=False)
    smoothed = copy.deepcopy(model)
    factors = smooth_model(smoothed, stats, alpha=0.7)
    # per block: q/k/v from the norm, gate/up from the norm, down from up_proj (v->o left out under GQA)
    assert len(factors) == 2 * 6
    assert "model.layers.0.self_attn.o_proj" not in factors
    with torch.no_grad():
        torch.testing.assert_close(smoothed(batch).logits, model(batch).logits, rtol=0, atol=1e-5)
    assert smoothed.model.layers[0].input_layernorm.weight[5] < 40.0  # the fold did change the weights
    # with power-of-two factors the fold is exact: bit for bit the same logits
    exact = copy.deepcopy(model)
    smooth_model(exact, stats, alpha=0.7, power_of_two=True)
    with torch.no_grad():
        assert torch.equal(exact(batch).logits, model(batch).logits)
    assert exact.model.layers[0].input_layernorm.weight[5] < 40.0
    # the activation range after smoothing is predicted from the statistics before it
    after = channel_stats(smoothed, batch, progress=False)
    predicted = smoothed_input_absmax(stats, factors)
    for name in factors:
        assert predicted[name] == pytest.approx(after[name].tensor_absmax, rel=1e-4)


def test_migration_leaves_the_real_model_unchanged(model_and_tokenizer):
    model, _ = model_and_tokenizer
    batch = random_ids(1, 32, seed=1, vocab=model.config.vocab_size)
    stats = channel_stats(model, batch, progress=False)
    smoothed = copy.deepcopy(model)
    factors = smooth_model(smoothed, stats, alpha=0.5)
    assert len(factors) == model.config.num_hidden_layers * 6
    with torch.no_grad():
        difference = (smoothed(batch).logits - model(batch).logits).abs().max()
    assert difference < 1e-4  # float rounding only: one ulp of noise on every weight gives about 6e-5 here
    norm_before = model.model.layers[3].post_attention_layernorm.weight
    norm_after = smoothed.model.layers[3].post_attention_layernorm.weight
    assert not torch.allclose(norm_before, norm_after)


def test_smoothing_helps_per_tensor_w8a8_on_an_outlier_channel(tiny_llama):
    model = tiny_llama()
    with torch.no_grad():
        for block in model.model.layers:
            block.post_attention_layernorm.weight[9] = 80.0  # an outlier feature in the MLP input
    batch = random_ids(4, 16, seed=2)
    with torch.no_grad():
        reference = model(batch).logits
        plain = w8a8_quantize_model(copy.deepcopy(model), W8A8Config(act_scheme="per_tensor"), calib=batch,
                                    progress=False)
        smooth = quantize_model(copy.deepcopy(model), SmoothQuantConfig(alpha=0.5, act_scheme="per_tensor"),
                                calib=batch, progress=False)
        error_plain = (plain(batch).logits - reference).pow(2).mean()
        error_smooth = (smooth(batch).logits - reference).pow(2).mean()
    assert sum(isinstance(m, W8A8Linear) for m in smooth.modules()) == 14
    assert error_smooth < 0.5 * error_plain


def test_config_validation_and_missing_calibration(tiny_llama):
    for bad in (1.5, -0.1, True, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="alpha must be a number in \\[0, 1\\]"):
            SmoothQuantConfig(alpha=bad)
    with pytest.raises(ValueError, match="fold_into"):
        SmoothQuantConfig(fold_into=("attention",))
    with pytest.raises(ValueError, match="fold_into"):
        SmoothQuantConfig(fold_into=())
    with pytest.raises(ValueError, match="act_scheme"):
        SmoothQuantConfig(act_scheme="dynamic")
    with pytest.raises(ValueError, match="power_of_two"):
        SmoothQuantConfig(power_of_two=1)
    assert SmoothQuantConfig(act_scheme="per_tensor").w8a8().needs_calib
    model = tiny_llama()
    with pytest.raises(ValueError, match="needs activation statistics"):
        quantize_model(model, SmoothQuantConfig())
    with pytest.raises(ValueError, match="No activation statistics"):
        smooth_model(model, {}, 0.5)
    assert not any(isinstance(m, W8A8Linear) for m in model.modules())


def test_fold_into_norms_only_and_skip(tiny_llama):
    model = tiny_llama()
    batch = random_ids(2, 16)
    stats = channel_stats(model, batch, progress=False)
    factors = smooth_model(copy.deepcopy(model), stats, 0.5, fold_into=("norm",))
    assert len(factors) == 2 * 5 and not any("down_proj" in name for name in factors)
    factors = smooth_model(copy.deepcopy(model), stats, 0.5, skip=("mlp",))
    assert len(factors) == 2 * 3 and all("self_attn" in name for name in factors)
