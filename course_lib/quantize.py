"""Uniform quantization of a weight tensor: absmax (symmetric) and zero point (asymmetric).

A uniform quantizer puts every weight on a grid of ``2**n_bits`` evenly spaced levels and
stores only the integer index ``q`` of the nearest level, plus the grid's ``scale`` (the
step) and, for the asymmetric grid, an integer ``zero_point`` (the code of 0.0):

    symmetric (absmax):   scale = max|W| / qmax,           qmax = 2**(n_bits-1) - 1
                          q     = clamp(round(W / scale), -qmax, qmax)
                          W_hat = q * scale
    asymmetric (affine):  lo, hi = min(W.min(), 0), max(W.max(), 0)
                          scale = (hi - lo) / (2**n_bits - 1)
                          zero_point = round(-lo / scale)          (an integer code)
                          q     = clamp(round(W / scale) + zero_point, 0, 2**n_bits - 1)
                          W_hat = (q - zero_point) * scale

For every W inside the range, |W - W_hat| <= scale / 2: rounding moves a weight by at
most half a step. The symmetric grid is *restricted*: codes -qmax..qmax, so 0.0 is a level
and the grid is mirror-symmetric; the extra code -2**(n_bits-1) (-128 at 8 bits) is unused.
The asymmetric range always includes 0, so 0.0 is exactly representable (code zero_point).

Granularity is one argument, ``group_size``, for a 2-D weight ``W`` of shape [out, in]:

    "tensor"   one scale for the whole tensor            scale: [1, 1]
    "channel"  one scale per output row                   scale: [out, 1]
    g (int)    one per g consecutive inputs of a row      scale: [out, in // g]

so ``scale`` (and ``zero_point``) is always [rows, n_groups] and broadcasts against W
viewed as [rows, n_groups, group_len]. ``torch.round`` rounds halves to even.

Degenerate groups. An all-zero group gets scale 1 (any positive scale is exact; 1 also
survives a float16 copy). A constant group c needs one level, not qmax of them: its scale
is the whole range |c|, so c sits exactly on code +-1. (With scale = |c| / qmax the product
qmax * fl(|c| / qmax) misses c by one float32 ulp for several percent of values.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP_SIZE_NAMES = ("tensor", "channel")


# ---------------------------------------------------------------- validation

def check_n_bits(n_bits) -> int:
    """Return ``n_bits`` if it is an int in 2..8, else raise a ValueError saying so."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 2 <= n_bits <= 8:
        raise ValueError(f"n_bits must be an integer from 2 to 8, got {n_bits!r}. Use 8, 4 or 3, for example.")
    return n_bits


def check_finite(W: torch.Tensor, name: str = "W") -> None:
    """Raise a ValueError when ``W`` holds NaN or Inf (they have no place on a grid)."""
    if torch.isfinite(W.sum()):  # one read, no mask: NaN and Inf both make the sum non-finite
        return
    if not torch.isfinite(W).all():  # the sum may also overflow on huge finite values: look closer
        n_bad = int((~torch.isfinite(W)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or Inf value(s); quantization needs finite numbers. "
            "Find where they came from (a diverged update, a division by zero) and fix or mask them first."
        )


def group_size_choices(in_features: int) -> list[int]:
    """Group sizes that divide ``in_features``: multiples of 32 first (what kernels like), else any >= 8."""
    divisors = [d for d in range(1, in_features + 1) if in_features % d == 0]
    return [d for d in divisors if d % 32 == 0] or [d for d in divisors if d >= 8] or divisors


def check_group_size(group_size, shape: tuple[int, ...]) -> None:
    """Raise a ValueError when ``group_size`` is not "tensor", "channel" or an int dividing shape[1]."""
    if isinstance(group_size, str):
        if group_size not in GROUP_SIZE_NAMES:
            raise ValueError(f"group_size must be 'tensor', 'channel' or a positive int, got {group_size!r}.")
        if group_size == "tensor":
            return
    elif isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size must be 'tensor', 'channel' or a positive int, got {group_size!r}.")
    if len(shape) != 2:
        raise ValueError(
            f"group_size={group_size!r} needs a 2-D weight [out_features, in_features], got shape {tuple(shape)}. "
            "Reshape it to 2-D first, or use group_size='tensor'."
        )
    if isinstance(group_size, int) and shape[1] % group_size != 0:
        raise ValueError(
            f"group_size={group_size} does not divide in_features={shape[1]}. "
            f"Use a divisor such as {group_size_choices(shape[1])}, or group_size='channel'."
        )


def int_range(n_bits: int, symmetric: bool) -> tuple[int, int]:
    """The codes a quantizer may use: [-qmax, qmax] (restricted symmetric) or [0, 2**n_bits - 1]."""
    if symmetric:
        return -(2 ** (n_bits - 1) - 1), 2 ** (n_bits - 1) - 1
    return 0, 2**n_bits - 1


# ---------------------------------------------------------------- building blocks

def _amax(x: torch.Tensor, dim) -> torch.Tensor:
    return x.amax().reshape([1] * x.dim()) if dim is None else x.amax(dim=dim, keepdim=True)


def _amin(x: torch.Tensor, dim) -> torch.Tensor:
    return x.amin().reshape([1] * x.dim()) if dim is None else x.amin(dim=dim, keepdim=True)


def _round_up_to(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The smallest ``dtype`` value >= scale, returned as float32 (a larger step keeps all of W in range)."""
    if dtype == torch.float32:
        return scale
    s = scale.to(dtype)
    s = torch.where(s.float() < scale, torch.nextafter(s, torch.full_like(s, float("inf"))), s)
    if not torch.isfinite(s).all():
        raise ValueError(f"A scale overflows {dtype}; store scales as float32 (scale_dtype=torch.float32).")
    return s.float()


def absmax_params(x: torch.Tensor, n_bits: int = 8, dim=None, scale_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Symmetric scale ``max|x| / (2**(n_bits-1) - 1)``, reduced over ``dim`` (None: all) with keepdim.

    scale_dtype: the dtype the scale will be stored in; the scale is rounded *up* to it.
    """
    x = x.float()
    qmax = 2 ** (n_bits - 1) - 1
    lo, hi = _amin(x, dim), _amax(x, dim)
    absmax = torch.maximum(-lo, hi)
    constant = hi == lo
    scale = torch.where(constant, absmax, absmax / qmax)  # constant group: c on code +-1, exactly
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero group: any scale is exact
    return _round_up_to(scale, scale_dtype)


def zero_point_params(
    x: torch.Tensor, n_bits: int = 8, dim=None, scale_dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric ``(scale, zero_point)`` over [min(x, 0), max(x, 0)], reduced over ``dim`` with keepdim.

    zero_point is an integer code in [0, 2**n_bits - 1] (uint8), the code of 0.0.
    """
    x = x.float()
    qmax = 2**n_bits - 1
    x_min, x_max = _amin(x, dim), _amax(x, dim)
    lo, hi = x_min.clamp(max=0), x_max.clamp(min=0)
    constant = x_max == x_min
    scale = torch.where(constant, hi - lo, (hi - lo) / qmax)  # constant group: one step is the range
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero group
    scale = _round_up_to(scale, scale_dtype)
    zero_point = torch.round(-lo / scale).clamp(0, qmax).to(torch.uint8)
    return scale, zero_point


def quantize_with(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None, n_bits: int = 8,
    symmetric: bool | None = None,
) -> torch.Tensor:
    """Integer codes of ``x`` on a given grid; ``scale``/``zero_point`` broadcast against ``x``.

    symmetric: None means "symmetric exactly when zero_point is None".
    Returns int8 codes in [-qmax, qmax] (symmetric) or uint8 codes in [0, 2**n_bits - 1].
    """
    if symmetric is None:
        symmetric = zero_point is None
    if symmetric != (zero_point is None):
        raise ValueError("symmetric=True takes zero_point=None; symmetric=False needs a zero_point.")
    qmin, qmax = int_range(n_bits, symmetric)
    codes = torch.round(x.float() / scale)
    if symmetric:
        return codes.clamp(qmin, qmax).to(torch.int8)
    return (codes + zero_point.float()).clamp(qmin, qmax).to(torch.uint8)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None) -> torch.Tensor:
    """``W_hat = (q - zero_point) * scale`` in float32 (zero_point None: ``q * scale``)."""
    if zero_point is None:
        return q.float() * scale
    return (q.float() - zero_point.float()) * scale


def absmax_quantize(x: torch.Tensor, n_bits: int = 8, dim=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: symmetric quantization of ``x`` with one scale per slice reduced over ``dim``."""
    scale = absmax_params(x, check_n_bits(n_bits), dim)
    return quantize_with(x, scale, None, n_bits), scale


def zero_point_quantize(x: torch.Tensor, n_bits: int = 8, dim=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q, scale, zero_point)``: asymmetric quantization of ``x`` over ``dim``."""
    scale, zero_point = zero_point_params(x, check_n_bits(n_bits), dim)
    return quantize_with(x, scale, zero_point, n_bits), scale, zero_point


# ---------------------------------------------------------------- whole weights

@dataclass(frozen=True)
class QuantizedTensor:
    """A quantized weight: integer codes plus the grid that decodes them.

    q:          [*W.shape] int8 (symmetric) or uint8 (asymmetric) codes
    scale:      [rows, n_groups] float32; rows = out (1 for "tensor"), n_groups = 1 unless grouped
    zero_point: [rows, n_groups] uint8, or None when symmetric
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor | None
    n_bits: int
    group_size: int | str
    symmetric: bool

    def dequantize(self) -> torch.Tensor:
        """``W_hat`` (float32, the shape of ``q``)."""
        rows, n_groups = self.scale.shape
        q = self.q.reshape(rows, n_groups, -1)  # [rows, n_groups, group_len]
        zero_point = None if self.zero_point is None else self.zero_point[..., None]  # [rows, n_groups, 1]
        return dequantize(q, self.scale[..., None], zero_point).reshape(self.q.shape)  # [*W.shape]


def _grouped_view(W: torch.Tensor, group_size) -> torch.Tensor:
    """W as [rows, n_groups, group_len]: one reduction over the last dim per group."""
    if group_size == "tensor":
        return W.reshape(1, 1, -1)  # [1, 1, numel]
    out_features, in_features = W.shape
    group_len = in_features if group_size == "channel" else group_size
    return W.reshape(out_features, in_features // group_len, group_len)  # [out, n_groups, group_len]


def quantize(
    W: torch.Tensor, n_bits: int = 8, group_size: int | str = "channel", symmetric: bool = True,
    scale_dtype: torch.dtype = torch.float32,
) -> QuantizedTensor:
    """Quantize ``W`` ([out, in]; any shape for "tensor") to ``n_bits`` at the given granularity.

    scale_dtype: the dtype scales will be stored in (QuantLinear uses float16); scales are
    rounded up to it *before* the codes are chosen, so the half-step bound holds for them.
    """
    check_n_bits(n_bits)
    check_group_size(group_size, tuple(W.shape))
    check_finite(W)
    Wg = _grouped_view(W.detach().float(), group_size)  # [rows, n_groups, group_len]
    if symmetric:
        scale, zero_point = absmax_params(Wg, n_bits, dim=-1, scale_dtype=scale_dtype), None  # [rows, n_groups, 1]
    else:
        scale, zero_point = zero_point_params(Wg, n_bits, dim=-1, scale_dtype=scale_dtype)  # [rows, n_groups, 1]
    q = quantize_with(Wg, scale, zero_point, n_bits, symmetric).reshape(W.shape)  # [*W.shape]
    zero_point = None if zero_point is None else zero_point.squeeze(-1)  # [rows, n_groups]
    return QuantizedTensor(q, scale.squeeze(-1), zero_point, n_bits, group_size, symmetric)


def quantize_reference(
    W: torch.Tensor, n_bits: int = 8, group_size: int | str = "channel", symmetric: bool = True
) -> QuantizedTensor:
    """Slow reference for :func:`quantize`: one Python iteration per group, each reduced whole."""
    check_n_bits(n_bits)
    check_group_size(group_size, tuple(W.shape))
    check_finite(W)
    Wg = _grouped_view(W.detach().float(), group_size)  # [rows, n_groups, group_len]
    rows, n_groups, _ = Wg.shape
    q = torch.empty(Wg.shape, dtype=torch.int8 if symmetric else torch.uint8, device=Wg.device)
    scale = torch.empty(rows, n_groups, device=Wg.device)
    zero_point = None if symmetric else torch.empty(rows, n_groups, dtype=torch.uint8, device=Wg.device)
    for r in range(rows):
        for g in range(n_groups):
            x = Wg[r, g]  # [group_len]
            if symmetric:
                s, z = absmax_params(x, n_bits), None
            else:
                s, z = zero_point_params(x, n_bits)
                zero_point[r, g] = z.item()
            scale[r, g] = s.item()
            q[r, g] = quantize_with(x, s, z, n_bits, symmetric)
    return QuantizedTensor(q.reshape(W.shape), scale, zero_point, n_bits, group_size, symmetric)


def fake_quantize(
    W: torch.Tensor, n_bits: int = 8, group_size: int | str = "channel", symmetric: bool = True,
    scale_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``W_hat``: quantize then dequantize (float32, W's shape). The error a quantized model sees.

    Equal, bit for bit, to ``quantize(W, ...).dequantize()`` (its reference), without the integer
    codes: the round, clamp and decode stay in float32, two passes fewer over W. Searches that
    quantize a weight many times (AWQ's scale and clip grids) spend most of their time here.
    """
    check_n_bits(n_bits)
    check_group_size(group_size, tuple(W.shape))
    check_finite(W)
    Wg = _grouped_view(W.detach().float(), group_size)  # [rows, n_groups, group_len]
    qmin, qmax = int_range(n_bits, symmetric)
    if symmetric:
        scale = absmax_params(Wg, n_bits, dim=-1, scale_dtype=scale_dtype)  # [rows, n_groups, 1]
        return torch.round(Wg / scale).clamp_(qmin, qmax).mul_(scale).reshape(W.shape)  # [*W.shape]
    scale, zero_point = zero_point_params(Wg, n_bits, dim=-1, scale_dtype=scale_dtype)  # [rows, n_groups, 1]
    offset = zero_point.float()
    codes = torch.round(Wg / scale).add_(offset).clamp_(qmin, qmax)  # integer-valued float32
    return codes.sub_(offset).mul_(scale).reshape(W.shape)  # [*W.shape]


# ---------------------------------------------------------------- the grid as one object

@dataclass(frozen=True)
class GridSpec:
    """The grid a weight is put on: what RTN, GPTQ and AWQ share, carried as one value.

    n_bits:      2..8 bits per weight
    group_size:  a positive int (inputs per group), "channel" (one scale per output row) or "tensor"
    symmetric:   True for absmax (no zero point), False for an integer zero point
    scale_dtype: the dtype scales are stored in; each scale is rounded *up* to it before codes are chosen
    """

    n_bits: int = 4
    group_size: int | str = 64
    symmetric: bool = False
    scale_dtype: torch.dtype = torch.float16

    def __post_init__(self):
        check_n_bits(self.n_bits)
        gs = self.group_size
        if isinstance(gs, str) and gs not in GROUP_SIZE_NAMES:
            raise ValueError(f"group_size must be a positive int, 'channel' or 'tensor', got {gs!r}.")
        if not isinstance(gs, str) and (isinstance(gs, bool) or not isinstance(gs, int) or gs <= 0):
            raise ValueError(f"group_size must be a positive int, 'channel' or 'tensor', got {gs!r}.")
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric must be True or False, got {self.symmetric!r}.")
        if self.scale_dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"scale_dtype must be torch.float16, bfloat16 or float32, got {self.scale_dtype!r}.")

    def group_len(self, in_features: int) -> int:
        """Inputs per group in a weight with ``in_features`` columns ("channel"/"tensor": all of them)."""
        return self.group_size if isinstance(self.group_size, int) else in_features

    def code_range(self) -> tuple[int, int]:
        """``(qmin, qmax)``, the codes this grid uses (:func:`int_range`)."""
        return int_range(self.n_bits, self.symmetric)

    def fit(self, W_group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(scale, zero_point)`` of the columns ``W_group`` [out, g]: one per row ([out, 1]), or [1, 1]
        for "tensor"; zero_point None when symmetric."""
        dim = None if self.group_size == "tensor" else 1
        if self.symmetric:
            return absmax_params(W_group, self.n_bits, dim=dim, scale_dtype=self.scale_dtype), None
        return zero_point_params(W_group, self.n_bits, dim=dim, scale_dtype=self.scale_dtype)


def check_group_size_fits(layers: list, group_size) -> None:
    """Raise a ValueError naming the first layer whose in_features ``group_size`` does not divide."""
    if not isinstance(group_size, int):
        return
    widths = sorted({layer.in_features for _, layer in layers})
    for name, layer in layers:
        if layer.in_features % group_size:
            common = sorted(set.intersection(*(set(group_size_choices(w)) for w in widths)))
            raise ValueError(
                f"group_size={group_size} does not divide in_features={layer.in_features} of layer {name!r}. "
                f"Group sizes dividing every layer's width {widths}: {common or 'none'}; or use "
                "group_size='channel', or add the layer to skip."
            )
