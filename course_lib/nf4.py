"""NF4 (QLoRA, Dettmers et al., 2023): 4-bit NormalFloat with blockwise absmax and double quantization.

Pretrained weights are roughly normal, so their 16 levels should sit at *quantiles* of a
normal distribution rather than evenly spaced. QLoRA's codebook has an exact zero and is
asymmetric: 8 positive and 7 negative quantiles, each side normalised so its end is ±1,

    offset     = ((1 - 1/(2·15)) + (1 - 1/(2·16))) / 2 = 0.9677083
    positive   = Φ⁻¹(linspace(offset, 0.5, 9)[:-1])      8 values, Φ⁻¹ the normal quantile function
    negative   = -Φ⁻¹(linspace(offset, 0.5, 8)[:-1])     7 values
    codebook   = sort(positive ∪ {0} ∪ negative) / Φ⁻¹(offset)       16 values in [-1, 1]

A weight is stored as the index of its nearest level after scaling by its block's absmax:

    blocks of 64 consecutive weights (the tensor flattened row-major, zero-padded at the end)
    absmax_b = max |W in block b|,   q = argmin_k |W / absmax_b - codebook[k]|,   W_hat = codebook[q] · absmax_b

Double quantization stores the float32 absmax values themselves in 8 bits: subtract their
mean (which QLoRA keeps as one float32), then quantize the centred values in blocks of 256,
each block scaled by its own absmax (one float32 each), onto one of two 8-bit codes
(``dq_code``):

    "int8"     (the default) linear: round(x / absmax · 127), 255 evenly spaced levels
    "dynamic"  bitsandbytes' 8-bit dynamic map (``create_dynamic_map()``, the code its
               ``quantize_blockwise`` uses by default, which ``quantize_4bit`` calls with
               ``blocksize=256`` under ``compress_statistics``): a float-like code with a
               decimal exponent from 10⁻⁶ to 10⁰ and fewer fraction levels at each smaller
               exponent. QLoRA's paper describes its second level as "8-bit Floats"; this map
               is what its implementation uses. Its 256 levels are 0, +1, and ±127 values,
               the largest negative one -0.993, so -1 is not a level.

Both store one byte per absmax, so the bytes are the same. Bits per parameter, for a tensor
of ``numel`` weights:

    no double quant:    4 + 32/64                          = 4.5
    double quant:       4 + 8/64 + 32/(64·256) + 32/numel  ≈ 4.127

(:func:`nf4_nbytes` counts the exact bytes, padding included; tests compare it with the
bytes of the tensors stored.) Differences from bitsandbytes, on purpose: the default second
level is linear int8 (``dq_code="dynamic"`` gives bitsandbytes' map; notebook 07 measures both
on the course's model); and the 4-bit codes are chosen against the double-quantized absmax,
the scale actually used to decode.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from .packing import pack_int4, unpack_int4
from .quantize import absmax_params, check_finite, quantize_with
from .methods import quantize_as, register
from .quant_linear import QuantizedLinear
from .swap import Selection, check_skip, replace_linears

NF4_OFFSET = ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))) / 2  # 0.9677083: between the 15- and 16-level tails


# ---------------------------------------------------------------- the codebook

def nf4_codebook(device=None) -> torch.Tensor:
    """QLoRA's 16 NF4 levels, sorted, float32 [16]: exactly -1, 0 and +1 among them."""
    positive = torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 9, dtype=torch.float64)[:-1])  # [8], Φ⁻¹
    negative = -torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 8, dtype=torch.float64)[:-1])  # [7]
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative])  # [16]
    return (values / positive.max()).sort().values.float().to(device)


def nf4_codebook_reference() -> torch.Tensor:
    """Slow reference for :func:`nf4_codebook`, from the standard library's normal quantiles."""
    inv_cdf = NormalDist().inv_cdf
    positive = [inv_cdf(NF4_OFFSET + (0.5 - NF4_OFFSET) * i / 8) for i in range(8)]
    negative = [-inv_cdf(NF4_OFFSET + (0.5 - NF4_OFFSET) * i / 7) for i in range(7)]
    top = inv_cdf(NF4_OFFSET)
    return torch.tensor(sorted(v / top for v in positive + [0.0] + negative), dtype=torch.float32)


def nearest_level(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook level for each value of x (uint8, x's shape).

    Fast path: compare with the 15 midpoints between neighbouring levels (``searchsorted``).
    """
    midpoints = (codebook[1:] + codebook[:-1]) / 2  # [15]
    return torch.searchsorted(midpoints, x.contiguous()).to(torch.uint8)


def nearest_level_reference(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Slow reference for :func:`nearest_level`: argmin of the distance to all 16 levels."""
    return (x[..., None] - codebook).abs().argmin(dim=-1).to(torch.uint8)  # [..., 16] -> [...]


# ---------------------------------------------------------------- double quantization

DQ_CODES = ("int8", "dynamic")


def dynamic_map(device=None) -> torch.Tensor:
    """bitsandbytes' signed 8-bit dynamic map (``create_dynamic_map()``): 256 sorted float32 levels in [-1, 1].

    For each exponent 10^(i-6), i = 0..6: the midpoints of ``linspace(0.1, 1, 2**i + 1)``, with both
    signs (2 · 127 values), plus 0 and +1.
    """
    return _dynamic_map().to(device)


@functools.cache
def _dynamic_map() -> torch.Tensor:
    values = [0.0, 1.0]
    for i in range(7):
        bounds = torch.linspace(0.1, 1.0, 2 ** i + 1, dtype=torch.float64)
        means = ((bounds[:-1] + bounds[1:]) / 2 * 10.0 ** (i - 6)).tolist()  # 2**i fraction levels
        values += means + [-m for m in means]
    return torch.tensor(sorted(values), dtype=torch.float32)


def double_quantize(absmax: torch.Tensor, block_size: int = 256,
                    code: str = "int8") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8-bit codes of the block absmax values: ``(q [n], scale [ceil(n / block_size)] float32, offset [] float32)``.

    offset = mean(absmax); the centred values are quantized in blocks of ``block_size``: with
    ``code="int8"`` absmax int8 (q int8, scale = block absmax / 127), with ``code="dynamic"`` the
    index of the nearest :func:`dynamic_map` level of value / block absmax (q uint8, scale = block absmax).
    """
    _check_dq_code(code)
    n = absmax.numel()
    offset = absmax.float().mean()
    centred = F.pad(absmax.float() - offset, (0, -n % block_size))  # [n_dq_blocks * block_size]
    blocks = centred.reshape(-1, block_size)  # [n_dq_blocks, block_size]
    if code == "dynamic":
        scale = blocks.abs().amax(dim=-1, keepdim=True)  # [n_dq_blocks, 1]
        safe = torch.where(scale != 0, scale, torch.ones_like(scale))
        q = nearest_level(blocks / safe, dynamic_map(absmax.device)).reshape(-1)[:n]  # [n] uint8
        return q, scale.reshape(-1), offset
    scale = absmax_params(blocks, 8, dim=-1)  # [n_dq_blocks, 1]
    q = quantize_with(blocks, scale, None, 8).reshape(-1)[:n]  # [n] int8
    return q, scale.reshape(-1), offset


def double_dequantize(q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, block_size: int = 256,
                      code: str = "int8") -> torch.Tensor:
    """Inverse of :func:`double_quantize`: the absmax values, float32 [n]."""
    _check_dq_code(code)
    block = torch.arange(q.numel(), device=q.device) // block_size  # [n]: the scale of each entry
    levels = dynamic_map(q.device)[q.long()] if code == "dynamic" else q.float()
    return levels * scale[block] + offset


def _check_dq_code(code) -> None:
    if code not in DQ_CODES:
        raise ValueError(f"dq_code must be one of {DQ_CODES}, got {code!r}.")


# ---------------------------------------------------------------- NF4 tensors

@dataclass(frozen=True)
class NF4Tensor:
    """A weight in NF4: packed 4-bit codes and its block absmax values (plain or double-quantized).

    codes:         [ceil(numel / 2)] uint8, two codes per byte (the flattened weight, row-major)
    absmax:        [n_blocks] float32, or None under double quantization, which stores instead
    q_absmax:      [n_blocks] int8 (uint8 with dq_code "dynamic"),  absmax_scale [n_dq_blocks] float32,
                   absmax_offset [] float32
    """

    codes: torch.Tensor
    absmax: torch.Tensor | None
    q_absmax: torch.Tensor | None
    absmax_scale: torch.Tensor | None
    absmax_offset: torch.Tensor | None
    shape: tuple[int, ...]
    block_size: int = 64
    dq_block_size: int = 256
    dq_code: str = "int8"

    def stored(self) -> list[torch.Tensor]:
        """The tensors this format keeps."""
        return [t for t in (self.codes, self.absmax, self.q_absmax, self.absmax_scale, self.absmax_offset)
                if t is not None]

    def nbytes(self) -> int:
        """Bytes of the stored tensors."""
        return sum(t.numel() * t.element_size() for t in self.stored())

    def block_absmax(self) -> torch.Tensor:
        """[n_blocks] float32: the scales the decoder uses (double-dequantized when stored in 8 bits)."""
        if self.absmax is not None:
            return self.absmax
        return double_dequantize(self.q_absmax, self.absmax_scale, self.absmax_offset, self.dq_block_size,
                                 self.dq_code)

    def dequantize(self) -> torch.Tensor:
        """``W_hat = codebook[q] · absmax_block``, float32 of the original shape."""
        numel = math.prod(self.shape)
        absmax = self.block_absmax()
        q = unpack_int4(self.codes)[:numel].long()  # [numel]
        levels = F.pad(nf4_codebook(self.codes.device)[q], (0, absmax.numel() * self.block_size - numel))
        W_hat = levels.reshape(-1, self.block_size) * absmax[:, None]  # [n_blocks, block_size]
        return W_hat.reshape(-1)[:numel].reshape(self.shape)


def nf4_nbytes(numel: int, block_size: int = 64, double_quant: bool = True, dq_block_size: int = 256) -> int:
    """Exact bytes NF4 stores for ``numel`` weights: codes + absmax (float32, or 8-bit + scales + offset)."""
    n_blocks = math.ceil(numel / block_size)
    total = math.ceil(numel / 2)
    if double_quant:
        return total + n_blocks + 4 * math.ceil(n_blocks / dq_block_size) + 4
    return total + 4 * n_blocks


def nf4_bits_per_param(numel: int, block_size: int = 64, double_quant: bool = True, dq_block_size: int = 256) -> float:
    """Stored bits per weight, overhead included (about 4.127 with double quantization, 4.5 without)."""
    return 8 * nf4_nbytes(numel, block_size, double_quant, dq_block_size) / numel


def quantize_nf4(W: torch.Tensor, block_size: int = 64, double_quant: bool = True,
                 dq_block_size: int = 256, dq_code: str = "int8") -> NF4Tensor:
    """NF4-quantize ``W`` (any shape) in blocks of ``block_size`` consecutive weights; ``dq_code``: the
    8-bit code of the double-quantized absmax ("int8" linear, or bitsandbytes' "dynamic" map)."""
    _check_block_size(block_size, "block_size")
    _check_block_size(dq_block_size, "dq_block_size")
    _check_dq_code(dq_code)
    check_finite(W)
    numel = W.numel()
    flat = F.pad(W.detach().float().reshape(-1), (0, -numel % block_size))  # [n_blocks * block_size]
    blocks = flat.reshape(-1, block_size)  # [n_blocks, block_size]
    absmax = blocks.abs().amax(dim=-1)  # [n_blocks]
    q_absmax = absmax_scale = absmax_offset = None
    if double_quant:
        q_absmax, absmax_scale, absmax_offset = double_quantize(absmax, dq_block_size, dq_code)
        absmax = double_dequantize(q_absmax, absmax_scale, absmax_offset, dq_block_size, dq_code)  # used to decode
    safe = torch.where(absmax != 0, absmax, torch.ones_like(absmax))  # an all-zero block: any scale is exact
    codebook = nf4_codebook(W.device)
    q = nearest_level(blocks / safe[:, None], codebook).reshape(-1)[:numel]  # [numel]
    codes = pack_int4(F.pad(q, (0, numel % 2)))  # [ceil(numel / 2)]
    return NF4Tensor(codes, None if double_quant else absmax, q_absmax, absmax_scale, absmax_offset,
                     tuple(W.shape), block_size, dq_block_size, dq_code)


def _check_block_size(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"{name} must be an int >= 2, got {value!r}; QLoRA uses 64 (weights) and 256 (scales).")


# ---------------------------------------------------------------- the layer and the driver

class NF4Linear(QuantizedLinear):
    """A linear layer with an NF4 weight, dequantized on every call (or ``kernel(x, layer)``)."""

    def __init__(self, weight: NF4Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        if len(weight.shape) != 2:
            raise ValueError(f"NF4Linear needs a 2-D weight [out, in], got shape {weight.shape}.")
        self.out_features, self.in_features = weight.shape
        self.block_size, self.dq_block_size, self.dq_code = weight.block_size, weight.dq_block_size, weight.dq_code
        self.double_quant = weight.absmax is None
        for name in ("codes", "absmax", "q_absmax", "absmax_scale", "absmax_offset"):
            value = getattr(weight, name)
            self.register_buffer(name, None if value is None else value.clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, block_size: int = 64, double_quant: bool = True,
                    dq_block_size: int = 256, dq_code: str = "int8") -> "NF4Linear":
        return cls(quantize_nf4(linear.weight, block_size, double_quant, dq_block_size, dq_code), linear.bias)

    def to_nf4(self) -> NF4Tensor:
        return NF4Tensor(self.codes, self.absmax, self.q_absmax, self.absmax_scale, self.absmax_offset,
                         (self.out_features, self.in_features), self.block_size, self.dq_block_size, self.dq_code)

    def dequantize_weight(self) -> torch.Tensor:
        return self.to_nf4().dequantize()  # [out, in] float32

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize_weight().to(x.dtype), bias)

    def theoretical_nbytes(self) -> int:
        """:func:`nf4_nbytes` of the weight plus the bias."""
        total = nf4_nbytes(self.out_features * self.in_features, self.block_size, self.double_quant,
                           self.dq_block_size)
        return total + self.bias_nbytes()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, block_size={self.block_size}, "
                f"double_quant={self.double_quant}" + (f", dq_code={self.dq_code}" if self.double_quant else ""))


@dataclass(frozen=True)
class NF4Config:
    """Settings of NF4.

    block_size:    weights per absmax block (64 in QLoRA)
    double_quant:  store the absmax values in 8 bits (QLoRA's double quantization)
    dq_block_size: absmax values per second-level block (256 in QLoRA)
    dq_code:       the 8-bit code of the second level: "int8" (linear) or "dynamic" (bitsandbytes' map)
    skip:          name fragments of linear layers to keep in full precision
    """

    block_size: int = 64
    double_quant: bool = True
    dq_block_size: int = 256
    dq_code: str = "int8"
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self):
        _check_block_size(self.block_size, "block_size")
        _check_block_size(self.dq_block_size, "dq_block_size")
        if not isinstance(self.double_quant, bool):
            raise ValueError(f"double_quant must be True or False, got {self.double_quant!r}.")
        _check_dq_code(self.dq_code)
        object.__setattr__(self, "skip", check_skip(self.skip))

    def bits_per_param(self, numel: int) -> float:
        return nf4_bits_per_param(numel, self.block_size, self.double_quant, self.dq_block_size)


@register(NF4Config)
def _apply(model: nn.Module, config: NF4Config, *, calib, select: Selection, progress: bool) -> None:
    """Swap the selected linears for ``NF4Linear`` (weights only: no calibration)."""
    replace_linears(model, lambda name, linear: NF4Linear.from_linear(linear, config.block_size, config.double_quant,
                                                                      config.dq_block_size, config.dq_code),
                    select, progress=progress, desc="NF4")


def quantize_model(model: nn.Module, config: NF4Config | None = None, *, calib=None,
                   progress: bool = True, only=None) -> nn.Module:
    """Swap every ``nn.Linear`` not in ``config.skip`` (in ``only``, if given) for an :class:`NF4Linear`,
    in place; return ``model``.

    ``calib`` is ignored: NF4 looks only at the weights.
    """
    return quantize_as(NF4Config, model, config, calib=calib, progress=progress, only=only)
