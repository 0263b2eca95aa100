"""LLM.int8's decomposition: exact when every column is an outlier, vector-wise int8 when none is, and the layer."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import memory
from course_lib.act_quant import vectorwise_int8_matmul
from course_lib.llm_int8 import (
    LLMInt8Config, LLMInt8Linear, decomposed_matmul, decomposed_matmul_reference, outlier_columns,
    outlier_fraction, quantize_model, reset_outlier_counts,
)
from course_lib.w8a8 import W8A8Linear
from support import random_ids


def with_outliers(seed=0, n_tokens=12, in_features=48, columns=(3, 17), magnitude=30.0):
    """X [n_tokens, in] ~ N(0, 1) with a few columns much larger (|x| >= 6 somewhere, surely)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n_tokens, in_features, generator=g)
    X[:, list(columns)] *= magnitude
    X[0, list(columns)] = magnitude
    return X, torch.randn(20, in_features, generator=g) * 0.1


def test_every_column_an_outlier_gives_the_exact_float_result():
    X, W = with_outliers()
    assert outlier_columns(X, 0.0).all()
    assert torch.equal(decomposed_matmul(X, W, threshold=0.0), X @ W.T)


def test_no_outlier_column_gives_vectorwise_int8():
    X, W = with_outliers()
    for threshold in (math.inf, 1e6):
        assert not outlier_columns(X, threshold).any()
        assert torch.equal(decomposed_matmul(X, W, threshold), vectorwise_int8_matmul(X, W))


def test_decomposition_equals_its_reference_and_beats_plain_int8():
    X, W = with_outliers(seed=1)
    assert outlier_columns(X, 6.0).nonzero().flatten().tolist() == [3, 17]
    Y = decomposed_matmul(X, W, 6.0)
    torch.testing.assert_close(Y.double(), decomposed_matmul_reference(X, W, 6.0), rtol=1e-5, atol=1e-5)
    exact = X @ W.T
    error_decomposed = (Y - exact).pow(2).mean()
    error_int8 = (vectorwise_int8_matmul(X, W) - exact).pow(2).mean()
    assert error_decomposed < 0.1 * error_int8  # the outliers no longer set every token's scale


def test_layer_at_infinite_threshold_is_vectorwise_w8a8():
    torch.manual_seed(2)
    linear = nn.Linear(48, 20, bias=True)
    x, _ = with_outliers(seed=2)
    x = x.reshape(3, 4, 48)
    layer = LLMInt8Linear.from_linear(linear, threshold=math.inf)
    assert torch.equal(layer(x), W8A8Linear.from_linear(linear, "per_token", "per_channel")(x))
    assert layer.outlier_fraction == 0.0
    everything = LLMInt8Linear.from_linear(linear, threshold=0.0)
    torch.testing.assert_close(everything(x), F.linear(x, everything.dequantize_weight(), linear.bias))
    torch.testing.assert_close(everything(x), everything.forward_reference(x))
    assert everything.outlier_fraction == 1.0


def test_layer_forward_reference_and_column_counts():
    torch.manual_seed(3)
    linear = nn.Linear(48, 20, bias=False)
    layer = LLMInt8Linear.from_linear(linear, threshold=6.0)
    x, _ = with_outliers(seed=3, columns=(5, 6, 40))
    y = layer(x)
    torch.testing.assert_close(y, layer.forward_reference(x), rtol=1e-5, atol=1e-5)
    layer(x[:, :])  # a second call adds to the counters
    assert (layer.outlier_columns_seen, layer.columns_seen) == (6, 96)
    assert layer.outlier_fraction == pytest.approx(3 / 48)
    assert memory.memory_footprint(layer) == layer.theoretical_nbytes() == 48 * 20 + 2 * 20


def test_quantize_model_reports_the_fraction_of_columns_kept(tiny_llama):
    model = tiny_llama()
    ids = random_ids(1, 16, seed=4)
    quantized = quantize_model(copy.deepcopy(model), LLMInt8Config(threshold=0.5), progress=False)
    layers = [m for m in quantized.modules() if isinstance(m, LLMInt8Linear)]
    assert len(layers) == 14 and isinstance(quantized.lm_head, nn.Linear)
    with torch.no_grad():
        error = (quantized(ids).logits - model(ids).logits).abs().max()
    fraction = outlier_fraction(quantized)
    assert 0 < fraction < 1 and error < 0.05
    seen = sum(m.columns_seen for m in layers)
    assert fraction == sum(m.outlier_columns_seen for m in layers) / seen
    reset_outlier_counts(quantized)
    assert outlier_fraction(quantized) == 0.0
    with pytest.raises(ValueError, match="no LLMInt8Linear"):
        outlier_fraction(model)


def test_config_validation():
    for bad in (-1.0, float("nan"), True, "6"):
        with pytest.raises(ValueError, match="threshold must be a number >= 0"):
            LLMInt8Config(threshold=bad)
    assert LLMInt8Config(threshold=math.inf).threshold == math.inf
    with pytest.raises(ValueError, match="empty string"):
        LLMInt8Config(skip=("",))
    with pytest.raises(ValueError, match="X \\[n_tokens, in\\] and W \\[out, in\\]"):
        decomposed_matmul(torch.randn(2, 3, 4), torch.randn(5, 4))
