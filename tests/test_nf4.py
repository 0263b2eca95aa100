"""NF4: the codebook as QLoRA builds it (and its published values), blockwise quantization, double quantization's bytes."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import memory
from course_lib.nf4 import (
    NF4Config, NF4Linear, double_dequantize, double_quantize, dynamic_map, nearest_level, nearest_level_reference,
    nf4_bits_per_param, nf4_codebook, nf4_codebook_reference, nf4_nbytes, quantize_nf4, quantize_model,
)
from course_lib.quantize import fake_quantize
from support import random_ids

# The NF4 levels as published with QLoRA (bitsandbytes' NF4 table; QLoRA paper, appendix E).
PUBLISHED_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]


def test_codebook_is_built_as_qlora_builds_it():
    codebook = nf4_codebook()
    assert codebook.shape == (16,) and codebook.dtype == torch.float32
    assert (codebook[1:] > codebook[:-1]).all()  # 16 sorted, distinct values
    values = codebook.tolist()
    assert values[0] == -1.0 and values[-1] == 1.0 and values.count(0.0) == 1  # exactly, not approximately
    assert sum(v > 0 for v in values) == 8 and sum(v < 0 for v in values) == 7  # asymmetric: zero is a level
    assert values[7] == 0.0
    assert (codebook - torch.tensor(PUBLISHED_NF4)).abs().max() < 1e-4
    torch.testing.assert_close(codebook, nf4_codebook_reference(), rtol=0, atol=1e-6)
    assert codebook[8] < -codebook[6]  # not mirror-symmetric: the positive side is finer (one more level)


def test_nearest_level_equals_the_argmin_reference():
    codebook = nf4_codebook()
    x = torch.cat([torch.rand(5000, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2, codebook])
    assert torch.equal(nearest_level(x, codebook), nearest_level_reference(x, codebook))
    assert nearest_level(codebook, codebook).tolist() == list(range(16))


def test_blockwise_quantization_decodes_onto_scaled_levels():
    W = torch.randn(24, 128, generator=torch.Generator().manual_seed(1))
    W[3, :64] = 0.0  # an all-zero block
    nf4 = quantize_nf4(W, block_size=64, double_quant=False)
    W_hat = nf4.dequantize()
    assert W_hat.shape == W.shape and torch.equal(W_hat[3, :64], torch.zeros(64))
    absmax = W.reshape(-1, 64).abs().amax(dim=1)  # [n_blocks]
    torch.testing.assert_close(nf4.absmax, absmax, rtol=0, atol=0)
    levels = W_hat.reshape(-1, 64) / torch.where(absmax > 0, absmax, 1)[:, None]
    assert (levels[..., None] - nf4_codebook()).abs().amin(dim=-1).max() < 1e-6  # every value on a level
    # each weight moved at most half of the widest gap between levels (0.28 of absmax, at the ends)
    gap = (nf4_codebook()[1:] - nf4_codebook()[:-1]).max()
    assert ((W - W_hat).abs().reshape(-1, 64) <= gap / 2 * absmax[:, None] + 1e-6).all()
    # the largest |w| of each block is stored exactly (it decodes to +-1 * absmax)
    assert torch.equal(W_hat.abs().reshape(-1, 64).amax(dim=1), absmax)


def test_nf4_beats_uniform_int4_absmax_on_normal_weights():
    W = torch.randn(64, 512, generator=torch.Generator().manual_seed(2))
    nf4_error = (quantize_nf4(W, 64, double_quant=False).dequantize() - W).pow(2).mean()
    int4_error = (fake_quantize(W, 4, 64, symmetric=True) - W).pow(2).mean()
    assert nf4_error < 0.9 * int4_error


def test_double_quantization_stores_the_scales_in_8_bits():
    absmax = torch.rand(700, generator=torch.Generator().manual_seed(3)) * 0.2 + 0.05
    q, scale, offset = double_quantize(absmax, block_size=256)
    assert q.dtype == torch.int8 and q.shape == (700,) and scale.shape == (3,) and offset.shape == ()
    assert float(offset) == pytest.approx(float(absmax.mean()))
    decoded = double_dequantize(q, scale, offset, 256)
    step = scale.repeat_interleave(256)[:700]
    assert ((decoded - absmax).abs() <= step / 2 + 1e-7).all()


def test_dynamic_map_is_bitsandbytes_signed_dynamic_code():
    code = dynamic_map()
    assert code.shape == (256,) and code.dtype == torch.float32 and (code[1:] > code[:-1]).all()
    # closed form: for exponent 10^(i-6), the 2^i midpoints 0.1 + 0.9 (k + 1/2) / 2^i, both signs; and 0, +1
    levels = [0.0, 1.0] + [s * 10.0 ** (i - 6) * (0.1 + 0.9 * (k + 0.5) / 2 ** i)
                           for i in range(7) for k in range(2 ** i) for s in (1, -1)]
    torch.testing.assert_close(code, torch.tensor(sorted(levels)), rtol=0, atol=1e-7)
    assert code[-1] == 1.0 and code[0] == pytest.approx(-0.99296875) and (code == 0).sum() == 1  # -1 is no level
    gaps = code.diff()
    assert gaps[0] > 1.7 / 127 and gaps[127] < 1e-6  # coarser than int8 near -1, far finer near 0


def test_double_quantization_with_the_dynamic_map():
    absmax = torch.rand(700, generator=torch.Generator().manual_seed(8)) * 0.2 + 0.05
    q, scale, offset = double_quantize(absmax, 256, code="dynamic")
    assert q.dtype == torch.uint8 and q.shape == (700,) and scale.shape == (3,) and offset.shape == ()
    centred = absmax - absmax.mean()
    block_absmax = centred.reshape(-1)[:700]
    expected_scale = torch.stack([block_absmax[i:i + 256].abs().max() for i in range(0, 700, 256)])
    torch.testing.assert_close(scale, expected_scale)
    x = centred / scale.repeat_interleave(256)[:700]
    assert torch.equal(q, nearest_level_reference(x, dynamic_map()))  # the nearest level of value / block absmax
    decoded = double_dequantize(q, scale, offset, 256, code="dynamic")
    torch.testing.assert_close(decoded, dynamic_map()[q.long()] * scale.repeat_interleave(256)[:700] + offset)
    assert (decoded - absmax).abs().max() < 0.01 * scale.max()  # within half of the widest gap, 0.014 / 2
    with pytest.raises(ValueError, match="dq_code"):
        double_quantize(absmax, 256, code="fp8")


def test_nf4_with_the_dynamic_map_stores_the_same_bytes():
    W = torch.randn(96, 200, generator=torch.Generator().manual_seed(9))
    linear_code = quantize_nf4(W, 64, True, 256)
    dynamic = quantize_nf4(W, 64, True, 256, dq_code="dynamic")
    assert dynamic.q_absmax.dtype == torch.uint8 and dynamic.dq_code == "dynamic"
    assert dynamic.nbytes() == linear_code.nbytes() == nf4_nbytes(W.numel())
    absmax = F.pad(W.reshape(-1), (0, -W.numel() % 64)).reshape(-1, 64).abs().amax(dim=1)
    assert (dynamic.block_absmax() - absmax).abs().max() < 0.01 * absmax.max()
    assert (dynamic.dequantize() - W).pow(2).mean() < 1.05 * (quantize_nf4(W, 64, False).dequantize() - W).pow(2).mean()
    layer = NF4Linear.from_linear(nn.Linear(200, 96), dq_code="dynamic")
    assert layer.dq_code == "dynamic" and memory.memory_footprint(layer) == layer.theoretical_nbytes()
    assert "dq_code=dynamic" in repr(layer)
    torch.testing.assert_close(layer.dequantize_weight(), layer.to_nf4().dequantize(), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(576, 576), (192, 576), (7, 100), (1, 63), (3, 5, 64)])
@pytest.mark.parametrize("double_quant", [True, False])
def test_memory_accounting_matches_the_bytes_stored(shape, double_quant):
    W = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
    nf4 = quantize_nf4(W, 64, double_quant, 256)
    stored = sum(t.numel() * t.element_size() for t in nf4.stored())
    assert nf4.nbytes() == stored == nf4_nbytes(W.numel(), 64, double_quant, 256)
    assert nf4_bits_per_param(W.numel(), 64, double_quant) == 8 * stored / W.numel()
    assert nf4.dequantize().shape == W.shape


def test_bits_per_parameter_as_in_qlora():
    numel = 576 * 1536
    assert nf4_bits_per_param(numel, double_quant=False) == 4 + 32 / 64  # 4.5
    with_dq = nf4_bits_per_param(numel, double_quant=True)
    assert with_dq == pytest.approx(4 + 8 / 64 + 32 / (64 * 256), abs=1e-3)  # about 4.127: 0.373 bits saved
    assert with_dq == 8 * (numel // 2 + numel // 64 + 4 * math.ceil(numel / 64 / 256) + 4) / numel


def test_layer_memory_forward_and_double_quant_error():
    torch.manual_seed(5)
    linear = nn.Linear(192, 40, bias=True)
    for double_quant in (True, False):
        layer = NF4Linear.from_linear(linear, double_quant=double_quant)
        assert memory.memory_footprint(layer) == layer.theoretical_nbytes()
        x = torch.randn(3, 192)
        torch.testing.assert_close(layer(x), F.linear(x, layer.dequantize_weight(), linear.bias), rtol=0, atol=0)
    plain = NF4Linear.from_linear(linear, double_quant=False).dequantize_weight()
    nested = NF4Linear.from_linear(linear, double_quant=True).dequantize_weight()
    W = linear.weight.detach()
    assert (nested - W).pow(2).mean() < 1.05 * (plain - W).pow(2).mean()  # 8-bit scales cost almost nothing


def test_quantize_model_and_config_validation(tiny_llama):
    model = tiny_llama()
    quantized = quantize_model(copy.deepcopy(model), NF4Config(), progress=False)
    assert sum(isinstance(m, NF4Linear) for m in quantized.modules()) == 14
    dynamic = quantize_model(copy.deepcopy(model), NF4Config(dq_code="dynamic"), progress=False)
    assert {m.dq_code for m in dynamic.modules() if isinstance(m, NF4Linear)} == {"dynamic"}
    ids = random_ids(1, 12, seed=6)
    with torch.no_grad():
        assert (quantized(ids).logits - model(ids).logits).abs().max() < 0.1
    for bad in (dict(block_size=0), dict(block_size=64.0), dict(dq_block_size=True), dict(double_quant=1),
                dict(skip="lm_head"), dict(dq_code="fp8")):
        with pytest.raises(ValueError):
            NF4Config(**bad)
    with pytest.raises(ValueError, match="NF4Config"):
        quantize_model(model, "nf4")
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_nf4(torch.tensor([1.0, float("nan")]))
