"""Quantizing activations, and the integer matmul that W8A8 computes with.

Weights are fixed, so their grid is chosen once. Activations change with every input, so
an activation grid is either computed on the fly or calibrated in advance:

    per-token dynamic:   scale_t = max_j |X[t, j]| / qmax      one scale per row (token), at run time
    per-tensor static:   scale   = max over calibration |X| / qmax   one number, fixed before inference
    q = clamp(round(X / scale), -qmax, qmax)                   qmax = 2**(n_bits-1) - 1 (127 at 8 bits)

A static scale is cheap (no reduction at run time) but one outlier channel stretches it
for every token; per-token follows each row. Values past a static scale are clipped.

With integer codes on both sides, a linear layer is an integer matmul and one rescale:

    Y[t, o] = sum_j X[t, j] W[o, j]
            ≈ scale_X[t] * scale_W[o] * sum_j q_X[t, j] q_W[o, j]          (sum in int32)

:func:`int_matmul` computes the integer sum exactly. Its fast path multiplies in float64,
which holds every integer up to 2**53, so it equals int32 accumulation as long as no
partial sum overflows int32 (in * qmax**2 < 2**31, checked); :func:`int_matmul_reference`
multiplies int64 tensors. (``torch._int_mm`` also gives int32 products but was about 10x
slower than the float64 path on the course's CPU; a GPU kernel plugs in through the
layer's ``kernel`` hook instead, see ``w8a8.py``.)
"""
from __future__ import annotations

import torch

from .quantize import absmax_params, check_n_bits, quantize_with

INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------- activation quantizers

def quantize_per_token(X: torch.Tensor, n_bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token absmax: ``(q, scale)`` with q int8 [..., in] and scale float32 [..., 1].

    Each row X[..., t, :] (one token) gets ``scale = max_j |X[t, j]| / qmax``.
    """
    check_n_bits(n_bits)
    scale = absmax_params(X, n_bits, dim=-1)  # [..., 1]
    return quantize_with(X, scale, None, n_bits), scale


def quantize_per_token_reference(X: torch.Tensor, n_bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow reference for :func:`quantize_per_token`: one Python iteration per token row."""
    check_n_bits(n_bits)
    rows = X.reshape(-1, X.shape[-1]).float()  # [n_tokens, in]
    qmax = 2 ** (n_bits - 1) - 1
    q = torch.empty(rows.shape, dtype=torch.int8)
    scale = torch.empty(rows.shape[0], 1)
    for t, row in enumerate(rows):
        lo, hi, absmax = float(row.min()), float(row.max()), float(row.abs().max())
        s = absmax if lo == hi else absmax / qmax  # a constant row sits on code +-1 exactly
        s = s if s > 0 else 1.0  # an all-zero row: any scale is exact
        scale[t] = s
        q[t] = torch.round(row / scale[t]).clamp(-qmax, qmax).to(torch.int8)
    return q.reshape(X.shape), scale.reshape(*X.shape[:-1], 1)


def static_scale(absmax: float | torch.Tensor, n_bits: int = 8) -> torch.Tensor:
    """The per-tensor scale ``absmax / qmax`` from a calibrated absmax (a float32 scalar tensor)."""
    check_n_bits(n_bits)
    absmax = float(absmax.max()) if isinstance(absmax, torch.Tensor) else float(absmax)
    if not absmax >= 0 or absmax == float("inf"):
        raise ValueError(f"A calibrated absmax must be a finite number >= 0, got {absmax!r}.")
    qmax = 2 ** (n_bits - 1) - 1
    return torch.tensor(absmax / qmax if absmax > 0 else 1.0, dtype=torch.float32)


def quantize_per_tensor(X: torch.Tensor, scale: torch.Tensor, n_bits: int = 8) -> torch.Tensor:
    """Static per-tensor codes ``clamp(round(X / scale), -qmax, qmax)`` (int8, X's shape); values
    beyond ``qmax * scale`` are clipped."""
    check_n_bits(n_bits)
    if scale.numel() != 1 or not float(scale) > 0:
        raise ValueError(f"A per-tensor scale is one positive number, got {scale!r}. Use static_scale(absmax).")
    return quantize_with(X, scale.to(X.device), None, n_bits)


def fake_quantize_activations(
    X: torch.Tensor, scheme: str = "per_token", scale: torch.Tensor | None = None, n_bits: int = 8
) -> torch.Tensor:
    """``X_hat``: X quantized and dequantized (float32, X's shape), per token or with a static scale."""
    if scheme == "per_token":
        q, s = quantize_per_token(X, n_bits)
        return q.float() * s
    if scheme == "per_tensor":
        if scale is None:
            raise ValueError("scheme='per_tensor' needs the calibrated scale: static_scale(stats.tensor_absmax).")
        return quantize_per_tensor(X, scale, n_bits).float() * scale.to(X.device)
    raise ValueError(f"scheme must be 'per_token' or 'per_tensor', got {scheme!r}.")


# ---------------------------------------------------------------- integer matmul

def _check_codes(q_X: torch.Tensor, q_W: torch.Tensor) -> None:
    if q_X.dtype != torch.int8 or q_W.dtype != torch.int8:
        raise ValueError(f"int_matmul takes int8 codes, got {q_X.dtype} and {q_W.dtype}; quantize first.")
    if q_X.dim() != 2 or q_W.dim() != 2 or q_X.shape[1] != q_W.shape[1]:
        raise ValueError(f"int_matmul needs q_X [n_tokens, in] and q_W [out, in] with the same in, "
                         f"got {tuple(q_X.shape)} and {tuple(q_W.shape)}.")
    if q_X.shape[1] * 127 * 127 > INT32_MAX:
        raise ValueError(f"in={q_X.shape[1]} is too wide: a sum of that many int8 products may overflow int32. "
                         "Split the input dimension and add the partial results.")


def int_matmul(q_X: torch.Tensor, q_W: torch.Tensor) -> torch.Tensor:
    """``q_X @ q_Wᵀ`` with int32 results: [n_tokens, in] x [out, in] -> [n_tokens, out] int32.

    Computed in float64, which is exact for these integers (see the module docstring).
    """
    _check_codes(q_X, q_W)
    return (q_X.double() @ q_W.double().T).to(torch.int32)  # [n_tokens, out]


def int_matmul_reference(q_X: torch.Tensor, q_W: torch.Tensor) -> torch.Tensor:
    """Slow reference for :func:`int_matmul`: an int64 matmul, checked to fit int32 (CPU)."""
    _check_codes(q_X, q_W)
    acc = q_X.cpu().long() @ q_W.cpu().long().T  # [n_tokens, out]
    if acc.numel() and acc.abs().max() > INT32_MAX:
        raise ValueError("An int32 accumulator would overflow.")
    return acc.to(torch.int32).to(q_X.device)


def w8a8_matmul(
    q_X: torch.Tensor, scale_X: torch.Tensor, q_W: torch.Tensor, scale_W: torch.Tensor
) -> torch.Tensor:
    """``Y = (q_X @ q_Wᵀ) * scale_X * scale_Wᵀ`` in float32: [n_tokens, out].

    scale_X: [n_tokens, 1] (per token) or [1, 1] / scalar (per tensor);
    scale_W: [out, 1] (per output channel) or [1, 1] (per tensor).
    """
    acc = int_matmul(q_X, q_W)  # [n_tokens, out] int32
    return acc.float() * scale_X.float().reshape(-1, 1) * scale_W.float().reshape(1, -1)  # [n_tokens, out]


def vectorwise_int8_matmul(X: torch.Tensor, W: torch.Tensor, n_bits: int = 8) -> torch.Tensor:
    """LLM.int8's vector-wise quantized product of float X [n_tokens, in] and W [out, in]:
    one absmax scale per row of X and per row (output channel) of W, integer matmul, rescale.
    Returns float32 [n_tokens, out]."""
    q_X, scale_X = quantize_per_token(X, n_bits)  # [n_tokens, in], [n_tokens, 1]
    q_W, scale_W = quantize_per_token(W, n_bits)  # [out, in], [out, 1]
    return w8a8_matmul(q_X, scale_X, q_W, scale_W)
