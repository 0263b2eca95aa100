"""W8A8: int8 activations times int8 weights on the integer tensor cores, rescaled per token and per channel.

    scale_x[m] = max_k |X[m, k]| / 127          (computed per call: "dynamic"; as course_lib.act_quant:
                                                 max |X[m, :]| for a constant row, 1 for an all-zero row)
    q_x[m, k]  = clamp(round(X[m, k] / scale_x[m]), -127, 127)
    Y[m, n]    = scale_x[m] * scale_w[n] * sum_k q_x[m, k] * q_w[n, k] + bias[n]

    X        [M, K]  float16 / bfloat16 / float32 (float16 / float32 in the interpreter)
    q_x      [M, K]  int8,  scale_x [M, 1] float32                   (quantize_per_token, the contract of
                                                                      course_lib.act_quant.quantize_per_token)
    q_w      [N, K]  int8,  scale_w [N, 1] or [1, 1] float16         (QuantLinear, n_bits=8, symmetric,
                                                                      group_size "channel" or "tensor")
    Y        [M, N]  X's dtype

Both scales are constant along k, so they leave the sum: the K loop is pure int8 x int8
-> int32 (exact, no rounding at all) through an int8 tl.dot, and the scales touch each output
once. An H100 does int8 products at twice the float16 rate, so for large M (prefill,
compute-bound) the matmul can be up to 2x faster, minus the extra pass that quantizes X.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import checks
from .decode import round_half_even
from .launch import Config, pick, tile_coordinates

QUANTIZE_BLOCK_K = 1024
GEMM_TABLE = [  # (max M, config), from benchmarks/kernel_speed.py --sweep on an H100 (4096^2 and 8192^2)
    (64, Config(block_m=64, block_n=128, block_k=128, num_warps=4, num_stages=4)),
    (256, Config(block_m=64, block_n=128, block_k=128, num_warps=8, num_stages=4)),
    (1 << 62, Config(block_m=128, block_n=128, block_k=128, num_warps=8, num_stages=3)),
]
INTERPRETER_CONFIG = Config(block_m=16, block_n=32, block_k=32, num_warps=4, num_stages=1)


@triton.jit
def quantize_per_token_kernel(
    X_ptr, q_ptr, scale_ptr,  # X [M, K] float, q [M, K] int8 (out), scale [M, 1] float32 (out)
    K, stride_xm, stride_xk, stride_qm, stride_sm,
    BLOCK_K: tl.constexpr,
):
    """Program m: pass 1 finds min and max of X[m, :], pass 2 writes the codes of row m."""
    m = tl.program_id(0)
    lo = tl.full((BLOCK_K,), float("inf"), tl.float32)
    hi = tl.full((BLOCK_K,), -float("inf"), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(X_ptr + m * stride_xm + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
        lo = tl.minimum(lo, tl.where(k < K, x, float("inf")))
        hi = tl.maximum(hi, tl.where(k < K, x, -float("inf")))
    row_min, row_max = tl.min(lo, axis=0), tl.max(hi, axis=0)
    absmax = tl.maximum(-row_min, row_max)
    scale = tl.where(row_min == row_max, absmax, tl.math.div_rn(absmax, 127.0))  # div_rn: IEEE division, as torch
    scale = tl.where(scale > 0, scale, 1.0)
    tl.store(scale_ptr + m * stride_sm, scale)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(X_ptr + m * stride_xm + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
        q = tl.minimum(tl.maximum(round_half_even(tl.math.div_rn(x, scale)), -127.0), 127.0)
        tl.store(q_ptr + m * stride_qm + k, q.to(tl.int8), mask=k < K)


@triton.jit
def w8a8_gemm_kernel(
    q_x_ptr, scale_x_ptr, q_w_ptr, scale_w_ptr, bias_ptr, Y_ptr,  # [M, K], [M, 1], [N, K], [rows, 1], [N], [M, N]
    M, N, K,
    stride_xm, stride_sx, stride_wn, stride_sw, stride_ym,  # stride_sw = 0 for a per-tensor weight scale
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """Program (tile): acc = q_x[tile rows] @ q_w[tile cols].T, then the two scales and the bias."""
    pid_m, pid_n = tile_coordinates(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.int32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(q_x_ptr + rm[:, None] * stride_xm + k[None, :], mask=(rm[:, None] < M) & (k[None, :] < K),
                    other=0)  # [BLOCK_M, BLOCK_K] int8
        b = tl.load(q_w_ptr + n[None, :] * stride_wn + k[:, None], mask=(n[None, :] < N) & (k[:, None] < K),
                    other=0)  # [BLOCK_K, BLOCK_N] int8: W's tile, transposed (k contiguous, as wgmma wants)
        acc = tl.dot(a, b, acc, out_dtype=tl.int32)
    scale_x = tl.load(scale_x_ptr + rm * stride_sx, mask=rm < M, other=0.0)
    scale_w = tl.load(scale_w_ptr + n * stride_sw, mask=n < N, other=0.0).to(tl.float32)
    y = acc.to(tl.float32) * scale_x[:, None] * scale_w[None, :]
    if HAS_BIAS:
        y += tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32)[None, :]
    tl.store(Y_ptr + rm[:, None] * stride_ym + n[None, :], y.to(Y_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (n[None, :] < N))


def quantize_per_token_reference(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow reference: (q_x int8 [M, K], scale_x float32 [M, 1]) with torch, in float32 as the kernel."""
    X = X.float()
    lo, hi = X.amin(dim=1, keepdim=True), X.amax(dim=1, keepdim=True)  # [M, 1]
    absmax = torch.maximum(-lo, hi)
    # divide by a tensor: torch divides a CUDA tensor by a Python number through its reciprocal (1 ulp off)
    scale = torch.where(lo == hi, absmax, absmax / torch.full_like(absmax, 127.0))  # a constant row: codes +-1
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row
    return torch.round(X / scale).clamp(-127, 127).to(torch.int8), scale


def quantize_per_token(X: torch.Tensor, q_out=None, scale_out=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token absmax int8: (q_x [M, K] int8, scale_x [M, 1] float32), one program per row; the values
    of ``course_lib.act_quant.quantize_per_token(X, 8)``."""
    checks.check_activation(X, None)
    checks.check_device(quantize_per_token_kernel, X)
    M, K = X.shape
    q = checks.output_buffer(q_out, M, K, torch.int8, X.device)
    scale_out = checks.output_buffer(scale_out, M, 1, torch.float32, X.device)
    if M:
        block_k = min(QUANTIZE_BLOCK_K, triton.next_power_of_2(K))
        quantize_per_token_kernel[(M,)](X, q, scale_out, K, X.stride(0), X.stride(1), q.stride(0), scale_out.stride(0),
                                        BLOCK_K=block_k, num_warps=4)
    return q, scale_out


def w8a8_reference(X, q_w, scale_w, bias=None) -> torch.Tensor:
    """Slow reference: quantize X per token (float32, as the kernel), then the products in float64."""
    q_x, scale_x = quantize_per_token_reference(X)
    Y = (q_x.double() @ q_w.double().T) * scale_x.double() * scale_w.double().reshape(1, -1)  # [M, 1] x [1, N]
    return Y if bias is None else Y + bias.double()


def w8a8_matmul(q_x, scale_x, q_w, scale_w, bias=None, out=None, out_dtype=torch.float16, version=2, config=None):
    """``scale_x[m] * scale_w[n] * (q_x @ q_w.T) + bias``, [M, N] in out_dtype, from already quantized X.

    q_x, scale_x [M, 1]: as ``quantize_per_token`` (or ``course_lib.act_quant.quantize_per_token(X, 8)``) returns
    them. version: 2, the int8 tl.dot (the only one). config: a launch.Config (None: GEMM_TABLE on a GPU).
    """
    for name, t in (("q_x", q_x), ("q_w", q_w)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.int8 or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D int8 tensor, got {getattr(t, 'dtype', type(t))}; "
                             "quantize X with quantize_per_token and W with QuantLinear(n_bits=8, symmetric=True).")
    (M, K), N = q_x.shape, q_w.shape[0]
    if q_w.shape[1] != K:
        raise ValueError(f"q_x has K={K} columns but q_w is {tuple(q_w.shape)}; q_w must be [N, {K}].")
    if not isinstance(scale_x, torch.Tensor) or scale_x.shape != (M, 1) or scale_x.dtype != torch.float32:
        raise ValueError(f"scale_x must be float32 [{M}, 1] (from quantize_per_token), got "
                         f"{getattr(scale_x, 'dtype', type(scale_x))} {tuple(getattr(scale_x, 'shape', ()))}.")
    rows, n_groups = checks.check_scale(scale_w, N, "scale_w")
    if n_groups != 1:
        raise ValueError(f"W8A8 takes one weight scale per output channel, got {n_groups} groups per row.")
    if out_dtype not in checks.ACTIVATION_DTYPES:
        raise ValueError(f"out_dtype must be float16, bfloat16 or float32, got {out_dtype}.")
    if q_x.stride(1) != 1 or q_w.stride(1) != 1:
        raise ValueError("q_x and q_w must have contiguous rows; call .contiguous() first.")
    checks.check_bias(bias, N)
    probe = torch.empty(0, dtype=out_dtype, device=q_x.device)  # the device / dtype checks look at X
    checks.check_device(w8a8_gemm_kernel, probe, scale_x=scale_x, q_w=q_w, scale_w=scale_w, bias=bias)
    out = checks.output_buffer(out, M, N, out_dtype, q_x.device)
    if version != 2:
        raise ValueError(f"version must be 2 (the int8 tl.dot), got {version!r}.")
    if M == 0:
        return out
    if config is None:
        config = INTERPRETER_CONFIG if checks.is_interpreted(w8a8_gemm_kernel) else pick(GEMM_TABLE, M)
    grid = (triton.cdiv(M, config.block_m) * triton.cdiv(N, config.block_n),)
    w8a8_gemm_kernel[grid](q_x, scale_x, q_w, scale_w, bias if bias is not None else scale_x, out, M, N, K,
                           q_x.stride(0), scale_x.stride(0), q_w.stride(0), scale_w.stride(0) if rows > 1 else 0,
                           out.stride(0), HAS_BIAS=bias is not None, BLOCK_M=config.block_m,
                           BLOCK_N=config.block_n, BLOCK_K=config.block_k, GROUP_M=config.group_m,
                           num_warps=config.num_warps, num_stages=config.num_stages)
    return out


def w8a8_linear(X, q_w, scale_w, bias=None, out=None, version=2, config=None) -> torch.Tensor:
    """``quantize_per_token`` then ``w8a8_matmul``: Y [M, N] in X's dtype (two launches)."""
    q_x, scale_x = quantize_per_token(X)
    return w8a8_matmul(q_x, scale_x, q_w, scale_w, bias, out, X.dtype, version, config)
