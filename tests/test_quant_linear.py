"""QuantLinear, save/load, RTN's quantize_model: on small random layers, a tiny Llama, and once on the real model."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import memory
from course_lib.quant_io import load_quantized, save_quantized
from course_lib.quant_linear import QuantLinear
from course_lib.quantize import quantize
from course_lib.rtn import RTNConfig, quantize_model
from support import random_ids, tiny_model

LAYER_CONFIGS = [(b, gs, sym) for b in (2, 3, 4, 8) for gs in ("tensor", "channel", 16) for sym in (True, False)]


def random_linear(seed: int, in_features: int = 64, out_features: int = 24, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias)


def test_forward_equals_linear_with_the_dequantized_weight():
    for trial, (n_bits, group_size, symmetric) in enumerate(LAYER_CONFIGS):
        linear = random_linear(trial, bias=trial % 2 == 0)
        layer = QuantLinear.from_linear(linear, n_bits, group_size, symmetric)
        x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(trial))
        W_hat = layer.dequantize_weight()
        assert W_hat.shape == (24, 64) and W_hat.dtype == torch.float32
        assert torch.equal(W_hat, layer.dequantize_weight_reference())
        torch.testing.assert_close(layer(x), F.linear(x, W_hat, linear.bias), rtol=0, atol=0)
        # the packed storage decodes to exactly what quantize() produced
        qt = quantize(linear.weight, n_bits, group_size, symmetric, scale_dtype=torch.float16)
        assert torch.equal(W_hat, qt.dequantize())
        assert torch.equal(layer.to_quantized().q, qt.q)


def test_kernel_hook_and_g_idx_are_used():
    layer = QuantLinear.from_linear(random_linear(0), 4, 16, False)
    x = torch.randn(3, 64)
    layer.kernel = lambda x, layer: torch.full((x.shape[0], layer.out_features), 7.0)
    assert (layer(x) == 7).all()
    layer.kernel = None
    W_hat = layer.dequantize_weight()
    layer.g_idx = torch.zeros_like(layer.g_idx)  # every column decoded with group 0's grid
    q, scale, zero_point = layer.codes().float(), layer.scale.float(), layer.zero_points().float()
    assert torch.equal(layer.dequantize_weight(), (q - zero_point[:, :1]) * scale[:, :1])
    assert not torch.equal(layer.dequantize_weight(), W_hat)


def test_memory_footprint_equals_theoretical_nbytes():
    for trial, (n_bits, group_size, symmetric) in enumerate(LAYER_CONFIGS):
        bias = trial % 2 == 0
        layer = QuantLinear.from_linear(random_linear(trial, bias=bias), n_bits, group_size, symmetric)
        assert memory.memory_footprint(layer) == layer.theoretical_nbytes()
        n_scales = {"tensor": 1, "channel": 24, 16: 24 * 4}[group_size]
        if symmetric or n_scales * n_bits % 8 == 0:  # else the packed zero points pad to a whole byte
            zero_bits = 0 if symmetric else n_bits
            weights = memory.grouped_bytes(24 * 64, n_bits, 24 * 64 // n_scales, 16, zero_bits)
            expected = weights + 4 * 64 + 4 * 24 * bias  # + int32 g_idx + float32 bias
            assert layer.theoretical_nbytes() == expected
    odd = QuantLinear.from_linear(random_linear(0, in_features=60, out_features=3), 3, "channel", False)
    assert memory.memory_footprint(odd) == odd.theoretical_nbytes() == 3 * 23 + 2 * 3 + 2 + 4 * 60 + 4 * 3


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = quantize_model(tiny_model(seed=0), RTNConfig(n_bits=3, group_size=32), progress=False)
    path = save_quantized(model, tmp_path / "tiny.safetensors")
    skeleton = load_quantized(tiny_model(seed=1), path)
    ids = random_ids(2, 12)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, skeleton(ids).logits)
    assert isinstance(skeleton.model.layers[1].mlp.down_proj, QuantLinear)
    assert skeleton.lm_head.weight is skeleton.model.embed_tokens.weight  # still tied
    with pytest.raises(ValueError, match="no QuantLinear"):
        save_quantized(tiny_model(seed=0), tmp_path / "plain.safetensors")


def test_quantize_model_swaps_every_linear_but_lm_head():
    model = tiny_model(seed=0)
    ids = random_ids(1, 16, seed=1)
    with torch.no_grad():
        reference = model(ids).logits
        quantize_model(model, RTNConfig(n_bits=8, group_size="channel", symmetric=True), calib=None, progress=False)
        logits = model(ids).logits
    quantized = [name for name, m in model.named_modules() if isinstance(m, QuantLinear)]
    assert len(quantized) == 2 * 7 and not any(isinstance(m, nn.Linear) for m in model.model.modules())
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.weight is model.model.embed_tokens.weight
    assert (logits - reference).norm() / reference.norm() < 0.02


def test_rtn_config_rejects_bad_values():
    for kwargs, message in [
        (dict(n_bits=1), "from 2 to 8"), (dict(n_bits=16), "from 2 to 8"), (dict(group_size=-8), "positive int"),
        (dict(group_size="row"), "positive int"), (dict(symmetric="yes"), "True or False"),
        (dict(skip="lm_head"), "tuple of layer-name"), (dict(skip=("",)), "empty string"),
    ]:
        with pytest.raises(ValueError, match=message):
            RTNConfig(**kwargs)
    assert RTNConfig(skip=["lm_head"]).skip == ("lm_head",)
    model = tiny_model(seed=0)
    with pytest.raises(ValueError, match=r"in_features=64 of layer 'model.layers.0.self_attn.q_proj'.*\[32, 64\]"):
        quantize_model(model, RTNConfig(group_size=128), progress=False)
    assert not any(isinstance(m, QuantLinear) for m in model.modules())  # nothing swapped on error


def test_int8_per_channel_rtn_on_the_real_model(model_and_tokenizer):
    fp32_model, tokenizer = model_and_tokenizer
    model = copy.deepcopy(fp32_model)
    quantize_model(model, RTNConfig(n_bits=8, group_size="channel", symmetric=True), progress=False)
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 210
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        reference, logits = fp32_model(ids).logits, model(ids).logits
    # measured: about 0.04 (a bf16 cast of the same model moves them by about 0.025)
    assert (logits - reference).norm() / reference.norm() < 0.1
    assert tokenizer.decode(logits[0, -1].argmax()).strip() == "Paris"
    predicted = memory.quantized_model_bytes(fp32_model, 8, group_size=None, zero_bits=0, other_bits=32)
    assert memory.memory_footprint(model) == pytest.approx(predicted, rel=0.01)  # g_idx is the difference


def test_map_linear_weights_transforms_unskipped_layers_and_checks_shapes():
    from course_lib.quantize import fake_quantize
    from course_lib.swap import map_linear_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    fake = copy.deepcopy(net)
    changed = map_linear_weights(fake, lambda W: fake_quantize(W, 8, "channel", True), skip=("2",), progress=False)
    assert changed == ["0"]
    assert torch.equal(fake[2].weight, net[2].weight)  # skipped
    assert not torch.equal(fake[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="shaped like the weight"):
        map_linear_weights(fake, lambda W: W.flatten(), progress=False)


def test_cached_dequantization_gives_identical_outputs_and_restores():
    from course_lib.quant_linear import cached_dequantization

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
    quantize_model(net, RTNConfig(n_bits=4, group_size=32, skip=()), progress=False)
    x = torch.randn(5, 64)
    expected = net(x)
    with cached_dequantization(net):
        assert all(m.kernel is not None for m in net.modules() if isinstance(m, QuantLinear))
        assert torch.equal(net(x), expected)
    assert all(m.kernel is None for m in net.modules() if isinstance(m, QuantLinear))
    assert torch.equal(net(x), expected)


# ---------------------------------------------------------------- the contract every quantized layer keeps

def _every_kind(linear):
    from course_lib.llm_int8 import LLMInt8Linear
    from course_lib.nf4 import NF4Linear
    from course_lib.w8a8 import W8A8Linear
    return [QuantLinear.from_linear(linear, 4, 32, False), QuantLinear.from_linear(linear, 8, "channel", True),
            W8A8Linear.from_linear(linear), LLMInt8Linear.from_linear(linear), NF4Linear.from_linear(linear, 32)]


def test_every_quantized_layer_keeps_the_one_contract():
    from course_lib.quant_linear import QuantizedLinear
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 24)
    x = torch.randn(3, 5, 64)
    for layer in _every_kind(linear):
        name = type(layer).__name__
        assert isinstance(layer, QuantizedLinear), name
        assert (layer.in_features, layer.out_features) == (64, 24)
        assert layer.dequantize_weight().shape == (24, 64) and layer.dequantize_weight().dtype == torch.float32
        assert layer.theoretical_nbytes() > layer.bias_nbytes() == 24 * 4, name
        y = layer(x)
        assert y.shape == (3, 5, 24) and torch.equal(y, layer.compute(x)), name
        layer.kernel = lambda x, layer: torch.full((*x.shape[:-1], layer.out_features), 7.0)
        assert torch.equal(layer(x), torch.full((3, 5, 24), 7.0)), f"{name} ignores its kernel hook"
        try:
            q_W, scale_W = layer.int8_weight()
        except ValueError:
            assert name == "NF4Linear" or (name == "QuantLinear" and layer.n_bits == 4), f"{name} refused int8_weight"
            continue
        assert q_W.dtype == torch.int8 and q_W.shape == (24, 64) and scale_W.shape == (24, 1), name
        torch.testing.assert_close(q_W.float() * scale_W.float(), layer.dequantize_weight())
