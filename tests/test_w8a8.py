"""Activation quantizers, the exact integer matmul, and W8A8 layers and their quantize_model."""
import copy

import pytest
import torch
from torch import nn

from course_lib import memory
from course_lib.act_quant import (
    fake_quantize_activations, int_matmul, int_matmul_reference, quantize_per_tensor, quantize_per_token,
    quantize_per_token_reference, static_scale, vectorwise_int8_matmul,
)
from course_lib.activations import channel_stats
from course_lib.w8a8 import W8A8Config, W8A8Linear, quantize_model


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_per_token_quantizer_equals_its_reference():
    X = torch.randn(3, 9, 40, generator=gen(0)) * torch.rand(3, 9, 1, generator=gen(1)) * 10
    X[0, 0] = 0.0  # an all-zero token
    X[0, 1] = -2.5  # a constant token
    for n_bits in (8, 4):
        q, scale = quantize_per_token(X, n_bits)
        q_ref, scale_ref = quantize_per_token_reference(X, n_bits)
        assert q.shape == X.shape and q.dtype == torch.int8 and scale.shape == (3, 9, 1)
        assert torch.equal(q, q_ref) and torch.equal(scale, scale_ref)
        qmax = 2 ** (n_bits - 1) - 1
        ordinary = torch.ones(3, 9, dtype=torch.bool)
        ordinary[0, :2] = False
        assert (q.abs().amax(dim=-1) == qmax)[ordinary].all()  # each token's largest value uses the top code
        assert ((q * scale - X).abs() <= scale / 2 + 1e-6).all()  # half a step, per token
    assert torch.equal(quantize_per_token(X)[0][0, 1], torch.full((40,), -1, dtype=torch.int8))


def test_static_per_tensor_quantizer_clips_beyond_its_range():
    scale = static_scale(2.54)  # 2.54 / 127 = 0.02
    X = torch.tensor([0.0, 0.02, -0.041, 2.54, 100.0, -100.0])
    q = quantize_per_tensor(X, scale)
    assert q.tolist() == [0, 1, -2, 127, 127, -127]
    X_hat = fake_quantize_activations(X, "per_tensor", scale)
    assert X_hat[4] == pytest.approx(2.54)
    with pytest.raises(ValueError, match="needs the calibrated scale"):
        fake_quantize_activations(X, "per_tensor")
    with pytest.raises(ValueError, match="finite number >= 0"):
        static_scale(float("nan"))


def test_int_matmul_is_exact_int32_accumulation():
    q_X = torch.randint(-127, 128, (33, 1536), generator=gen(2), dtype=torch.int8)
    q_W = torch.randint(-127, 128, (20, 1536), generator=gen(3), dtype=torch.int8)
    acc = int_matmul(q_X, q_W)
    assert acc.dtype == torch.int32 and torch.equal(acc, int_matmul_reference(q_X, q_W))
    worst = torch.full((2, 1536), 127, dtype=torch.int8)  # 1536 * 127**2 > 2**24: float32 would round
    assert int(int_matmul(worst, -worst)[0, 0]) == -1536 * 127 * 127
    with pytest.raises(ValueError, match="int8 codes"):
        int_matmul(q_X.float(), q_W)
    with pytest.raises(ValueError, match="same in"):
        int_matmul(q_X, q_W[:, :100])


def test_vectorwise_matmul_is_close_to_the_float_product():
    X, W = torch.randn(16, 64, generator=gen(4)), torch.randn(24, 64, generator=gen(5))
    Y = vectorwise_int8_matmul(X, W)
    assert (Y - X @ W.T).abs().max() < 0.05 * (X @ W.T).abs().max()


@pytest.mark.parametrize("act_scheme,weight_scheme", [("per_token", "per_channel"), ("per_tensor", "per_tensor"),
                                                      ("per_tensor", "per_channel")])
def test_w8a8_layer_forward_equals_its_reference(act_scheme, weight_scheme):
    torch.manual_seed(6)
    linear = nn.Linear(64, 24, bias=True)
    x = torch.randn(2, 5, 64)
    layer = W8A8Linear.from_linear(linear, act_scheme, weight_scheme, input_absmax=float(x.abs().max()))
    y = layer(x)
    assert y.shape == (2, 5, 24) and y.dtype == x.dtype
    torch.testing.assert_close(y, layer.forward_reference(x), rtol=1e-5, atol=1e-5)
    error = (y - linear(x)).abs().max() / linear(x).abs().max()
    assert 0 < error < 0.05
    assert memory.memory_footprint(layer) == layer.theoretical_nbytes()
    layer.kernel = lambda x, layer: torch.zeros(*x.shape[:-1], layer.out_features)
    assert (layer(x) == 0).all()


def test_static_layer_needs_a_calibrated_absmax():
    with pytest.raises(ValueError, match="needs input_absmax"):
        W8A8Linear.from_linear(nn.Linear(8, 4), act_scheme="per_tensor")


def test_config_validation_says_what_to_use():
    with pytest.raises(ValueError, match="act_scheme must be one of"):
        W8A8Config(act_scheme="per_channel")
    with pytest.raises(ValueError, match="weight_scheme must be one of"):
        W8A8Config(weight_scheme="per_token")
    with pytest.raises(ValueError, match="n_bits"):
        W8A8Config(a_bits=16)
    with pytest.raises(ValueError, match="skip"):
        W8A8Config(skip="lm_head")
    with pytest.raises(ValueError, match="W8A8Config"):
        quantize_model(nn.Linear(2, 2), {"act_scheme": "per_token"})


def test_quantize_model_per_token_and_static(tiny_llama):
    model = tiny_llama()
    ids = torch.randint(0, 100, (2, 16), generator=gen(7))
    with torch.no_grad():
        reference = model(ids).logits
    dynamic = quantize_model(copy.deepcopy(model), W8A8Config(), progress=False)
    layers = [m for m in dynamic.modules() if isinstance(m, W8A8Linear)]
    assert len(layers) == 14 and isinstance(dynamic.lm_head, nn.Linear)
    untouched = copy.deepcopy(model)
    with pytest.raises(ValueError, match="needs calib"):
        quantize_model(untouched, W8A8Config(act_scheme="per_tensor"), progress=False)
    assert not any(isinstance(m, W8A8Linear) for m in untouched.modules())  # nothing swapped
    static = quantize_model(copy.deepcopy(model), W8A8Config(act_scheme="per_tensor"), calib=ids, progress=False)
    stats = channel_stats(model, ids, progress=False)
    q_proj = static.model.layers[0].self_attn.q_proj
    assert float(q_proj.input_scale) == pytest.approx(stats["model.layers.0.self_attn.q_proj"].tensor_absmax / 127)
    with torch.no_grad():
        for quantized in (dynamic, static):
            error = (quantized(ids).logits - reference).abs().max()
            assert 0 < error < 0.05 * reference.abs().max()
    # a stats dict works as calib too, and gives the same model
    from_stats = quantize_model(copy.deepcopy(model), W8A8Config(act_scheme="per_tensor"), calib=stats, progress=False)
    assert torch.equal(from_stats.model.layers[1].mlp.down_proj.input_scale, static.model.layers[1].mlp.down_proj.input_scale)


def test_weight_is_stored_as_an_8_bit_per_channel_quant_linear_stores_it():
    from course_lib.quant_linear import QuantLinear

    torch.manual_seed(8)
    linear = nn.Linear(64, 24)
    layer = W8A8Linear.from_linear(linear)
    reference = QuantLinear.from_linear(linear, 8, "channel", symmetric=True)
    (q_W, scale_W), (q_ref, scale_ref) = layer.int8_weight(), reference.int8_weight()
    assert torch.equal(q_W, q_ref) and torch.equal(scale_W, scale_ref)
    assert torch.equal(layer.dequantize_weight(), reference.dequantize_weight())
