"""W4A16: QuantLinear's packed 4-bit weights (group scales, integer zero points, g_idx) times X.

    Y[m, n] = sum_k X[m, k] * (q[n, k] - zero_point[n, g]) * scale[n, g] + bias[n],   g = g_idx[k]

    X           [M, K]             float16 / bfloat16 / float32 (float16 / float32 in the interpreter)
    qweight     [N, ceil(K / 2)]   uint8, two codes per byte, low nibble = even k (QuantLinear.qweight)
    scale       [rows, n_groups]   float16, rows = N or 1 ("tensor")         (QuantLinear.scale)
    zero_point  packed uint8 stream of the [rows, n_groups] codes, or None when symmetric (then 8)
    g_idx       [K] int32, or None for consecutive groups (k // group_len, group_len = K / n_groups)
    Y           [M, N]             X's dtype

Half a byte per weight: when M is small the matmul streams the weight, so the 4x fewer
bytes than float16 are the whole speed-up, if the unpacking keeps up with memory.

Versions, each correct on every shape, format and g_idx (v7: the formats few_rows.supports):
    v1  unfused: a Triton kernel writes W_hat [N, K], then torch.matmul (naive for small M:
        W_hat goes through memory twice, in float16; but the right choice for large M, where
        the matmul is compute-bound and a fused kernel would decode each tile M / BLOCK_M times)
    v2  fused: each [BLOCK_K, BLOCK_N] weight tile is decoded in registers, code by code, and
        fed to tl.dot; nothing but the packed bytes leaves memory
    v3  fast GEMM (w4a16_fast.py): one byte load gives two codes (even and odd columns meet the
        even and odd columns of X), one scale per tile when the tile sits in one group, split-K
    v5  GEMV (w4a16_fast.py): int32 words, codes decoded into float mantissas (no int -> float
        conversion), the zero point and scale out of the code loop, the whole K per program: one launch
    v6  GEMV, two codes per instruction (w4a16_fp16x2.py): v5's tiles, each byte's two codes decoded into a
        float16 pair and multiplied by a pair of X in float16x2 (inline PTX, float16 X on a GPU); an
        arithmetic twin of the same structure in float32 elsewhere (interpreter, bf16/fp32 X)
    v7  few rows (few_rows.py, M <= 64): every row of X in one program, the weight tile as tl.dot's left
        operand, exact integers q - z into the tensor cores and the group's scale after the dot

Which version runs when ``version=None`` (measured on an H100): ``default_version`` below.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..packing import unpack_bits
from . import checks, few_rows, w4a16_fast, w4a16_fp16x2
from .decode import group_of_columns, load_nibble_codes, load_scale, load_zero_point
from .launch import Config, pick

GEMV_MAX_M = 4  # v6 (float16 X) or v5 up to this many rows (a program per row), v3 ...
UNFUSED_MIN_M = 1024  # ... and v1 from here: at prefill sizes the matmul is compute-bound, and decoding W
# once into float16 for cuBLAS beats re-decoding every weight tile for every block of rows (measured on an H100)
V1_V2_CONFIG = Config(block_m=32, block_n=64, block_k=64, num_warps=4, num_stages=3)
FAST = {  # version -> (launcher, its (max M, config) table on a GPU)
    3: (w4a16_fast.launch_v3_gemm, w4a16_fast.GEMM_TABLE),
    5: (w4a16_fast.launch_v5_gemv, w4a16_fast.GEMV_V5_TABLE),
    6: (w4a16_fp16x2.launch_v6_gemv, w4a16_fp16x2.GEMV_V6_TABLE),
}
INTERPRETER_CONFIG = Config(block_m=16, block_n=32, block_k=64, split_k=1, num_warps=4, num_stages=1)


@triton.jit
def w4a16_v1_dequantize_kernel(
    qweight_ptr, scale_ptr, zero_ptr, g_idx_ptr, W_ptr,  # [N, ceil(K/2)], [rows, n_groups], packed, [K], [N, K]
    N, K, group_len,  # group_len: columns per group when g_idx is None
    stride_qn, stride_sn, stride_sg, zero_row_stride, stride_wn,  # rows = 1: stride_sn = zero_row_stride = 0
    SYMMETRIC: tl.constexpr, HAS_G_IDX: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """v1, step 1: program (n-block, k-block) writes W_hat[n, k] = (q - zero_point) * scale, in W's dtype."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)[:, None]  # [BLOCK_N, 1]
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]  # [1, BLOCK_K]
    mask = (n < N) & (k < K)
    q = load_nibble_codes(qweight_ptr, n, k, stride_qn, mask)
    g = group_of_columns(g_idx_ptr, k, K, group_len, HAS_G_IDX)
    zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, mask, 4, SYMMETRIC)
    W_hat = (q - zero_point).to(tl.float32) * load_scale(scale_ptr, n, g, stride_sn, stride_sg, mask)
    tl.store(W_ptr + n * stride_wn + k, W_hat.to(W_ptr.dtype.element_ty), mask=mask)


@triton.jit
def w4a16_v2_kernel(
    X_ptr, qweight_ptr, scale_ptr, zero_ptr, g_idx_ptr, bias_ptr, Y_ptr,  # as v1, + X [M, K], bias [N], Y [M, N]
    M, N, K, group_len,
    stride_xm, stride_xk, stride_qn, stride_sn, stride_sg, zero_row_stride, stride_ym,
    SYMMETRIC: tl.constexpr, HAS_G_IDX: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """v2: program (m-block, n-block) decodes [BLOCK_K, BLOCK_N] weight tiles code by code into tl.dot."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]  # [1, BLOCK_N]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kx = k0 + tl.arange(0, BLOCK_K)  # [BLOCK_K]
        x = tl.load(X_ptr + rm[:, None] * stride_xm + kx[None, :] * stride_xk,
                    mask=(rm[:, None] < M) & (kx[None, :] < K), other=0.0)  # [BLOCK_M, BLOCK_K]
        k = kx[:, None]  # [BLOCK_K, 1]
        mask = (k < K) & (n < N)
        q = load_nibble_codes(qweight_ptr, n, k, stride_qn, mask)  # [BLOCK_K, BLOCK_N]: W's tile, transposed
        g = group_of_columns(g_idx_ptr, k, K, group_len, HAS_G_IDX)  # [BLOCK_K, 1]
        zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, mask, 4, SYMMETRIC)
        W_hat = (q - zero_point).to(tl.float32) * load_scale(scale_ptr, n, g, stride_sn, stride_sg, mask)
        acc = tl.dot(x, W_hat.to(x.dtype), acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32)
    tl.store(Y_ptr + rm[:, None] * stride_ym + n, acc.to(Y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (n < N))


def default_version(M: int, v6_fast: bool = False, v7_runs: bool = False) -> int:
    """The version ``w4a16_matmul`` runs for M rows when none is asked for (the fastest on an H100).

    v6_fast: v6 would run its float16x2 path (w4a16_fp16x2.v6_fast_path: float16 X, groups of a multiple of
    64 codes, ...); then v6 takes M = 1, where it beat v5 and v7 on every benchmarked shape. v7_runs:
    few_rows.supports this call (M <= 64, default g_idx, groups of a multiple of 32, whole words); then v7
    takes M = 2 .. 64, where it reads the weight once for all rows (v6 and v5 once per row, v3 once per 16).
    Otherwise v5 up to GEMV_MAX_M rows, v3, and v1 from UNFUSED_MIN_M."""
    if M == 1 and v6_fast:
        return 6
    if M >= 2 and v7_runs:
        return 7
    if M <= GEMV_MAX_M:
        return 6 if v6_fast else 5
    return 3 if M < UNFUSED_MIN_M else 1


def w4a16_reference(X, qweight, scale, zero_point=None, g_idx=None, bias=None) -> torch.Tensor:
    """Slow reference in float64, through course_lib.packing: W_hat[n, k] from the codes, then X @ W_hat.T."""
    K = X.shape[1]
    rows, n_groups = scale.shape
    g = g_idx.long() if g_idx is not None else torch.arange(K, device=X.device) // (K // n_groups)  # [K]
    q = unpack_bits(qweight, 4, K).double()  # [N, K] stored codes 0..15 (symmetric ones offset by +8)
    if zero_point is None:
        zero = torch.full((rows, n_groups), 8.0, dtype=torch.float64, device=X.device)
    else:
        zero = unpack_bits(zero_point, 4, rows * n_groups).double().reshape(rows, n_groups)  # [rows, n_groups]
    W_hat = (q - zero[:, g]) * scale.double()[:, g]  # [rows, K] broadcasts over N when rows = 1
    Y = X.double() @ W_hat.T
    return Y if bias is None else Y + bias.double()


def w4a16_matmul(X, qweight, scale, zero_point=None, g_idx=None, bias=None, out=None, version=None, config=None):
    """``X @ W_hat.T + bias`` [M, N] in X's dtype for QuantLinear's 4-bit format (module docstring).

    g_idx: pass None when it is the default ``arange(K) // group_len`` (the fast kernels then
    compute groups instead of loading them); pass the tensor after act-order. version: 1, 2, 3, 5, 6 or 7 (None:
    chosen by M and the format, see default_version). config: a launch.Config (None: the version's table on a
    GPU, a small one in the interpreter). out: optional [M, N] buffer.
    """
    if qweight.dtype != torch.uint8 or qweight.dim() != 2:
        raise ValueError(f"qweight must be the uint8 [N, ceil(K/2)] of a 4-bit QuantLinear, got {qweight.dtype} "
                         f"{tuple(qweight.shape)}.")
    checks.check_activation(X, None)
    N, K = qweight.shape[0], X.shape[1]
    if qweight.shape[1] != (K + 1) // 2:
        raise ValueError(f"X has K={K} columns, so a 4-bit qweight needs {(K + 1) // 2} bytes per row; got "
                         f"{qweight.shape[1]}. Is this the layer's in_features (and 4-bit, not 8-bit)?")
    rows, n_groups = checks.check_scale(scale, N)
    if K % n_groups:
        raise ValueError(f"scale has {n_groups} groups per row, which does not divide K={K}.")
    checks.check_zero_point(zero_point, rows * n_groups, 4)
    checks.check_g_idx(g_idx, K)
    checks.check_bias(bias, N)
    checks.check_device(w4a16_v2_kernel, X, qweight=qweight, scale=scale, zero_point=zero_point, g_idx=g_idx,
                        bias=bias)
    M = X.shape[0]
    out = checks.output_buffer(out, M, N, X.dtype, X.device)
    if M == 0:
        return out
    if version is None:
        group_len, has_g_idx = K // n_groups, g_idx is not None
        version = default_version(M, w4a16_fp16x2.v6_fast_path(X, group_len, has_g_idx),
                                  few_rows.supports(X, qweight, 4, group_len, has_g_idx))
    if version not in (1, 2, 3, 5, 6, 7):
        raise ValueError(f"version must be 1, 2, 3, 5, 6 or 7 (or None to choose by M), got {version!r}.")
    if version == 7:
        if not few_rows.supports(X, qweight, 4, K // n_groups, g_idx is not None):
            raise ValueError(f"version 7 needs M <= {few_rows.MAX_M} (got {M}), the default g_idx (pass g_idx=None), "
                             f"groups of a multiple of {few_rows.MIN_GROUP} columns (got {K // n_groups}) and rows of "
                             "whole 4-byte words (K a multiple of 8); use version=None to choose one that runs.")
        few_rows.launch(X, qweight, scale, zero_point, bias, out, 4, K // n_groups, config)
        return out
    interpreted = checks.is_interpreted(w4a16_v2_kernel)
    if config is None:
        if interpreted:
            # v5, v6: chunks of at most 4 words
            config = INTERPRETER_CONFIG.with_(unroll=4) if version in (5, 6) else INTERPRETER_CONFIG
        elif version in (1, 2):
            config = V1_V2_CONFIG
        else:
            config = pick(FAST[version][1], M)
    layout = dict(  # everything the kernels need to read the format, in their parameters' order
        group_len=K // n_groups, stride_qn=qweight.stride(0), stride_sn=scale.stride(0) if rows > 1 else 0,
        stride_sg=scale.stride(1), zero_row_stride=n_groups if rows > 1 else 0,
    )
    dummy = scale  # stands in for absent tensors; the kernels never read it
    tensors = (qweight, scale, zero_point if zero_point is not None else dummy, g_idx if g_idx is not None else dummy)
    bias_arg = bias if bias is not None else dummy
    if version == 1:
        W_hat = torch.empty(N, K, dtype=X.dtype, device=X.device)
        grid = (triton.cdiv(N, config.block_n), triton.cdiv(K, config.block_k))
        w4a16_v1_dequantize_kernel[grid](*tensors, W_hat, N, K, *layout.values(), W_hat.stride(0),
                                         SYMMETRIC=zero_point is None, HAS_G_IDX=g_idx is not None,
                                         BLOCK_N=config.block_n, BLOCK_K=config.block_k)
        torch.matmul(X, W_hat.T, out=out)
        if bias is not None:
            out += bias.to(out.dtype)
        return out
    if version == 2:
        grid = (triton.cdiv(M, config.block_m), triton.cdiv(N, config.block_n))
        w4a16_v2_kernel[grid](X, *tensors, bias_arg, out, M, N, K, layout["group_len"], X.stride(0), X.stride(1),
                              *list(layout.values())[1:], out.stride(0), SYMMETRIC=zero_point is None,
                              HAS_G_IDX=g_idx is not None, HAS_BIAS=bias is not None,
                              DOT_PRECISION="ieee" if X.dtype == torch.float32 else "tf32",
                              BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
                              num_warps=config.num_warps, num_stages=config.num_stages)
        return out
    launch = FAST[version][0]
    launch(X, *tensors, bias_arg, out, layout, symmetric=zero_point is None, has_g_idx=g_idx is not None,
           has_bias=bias is not None, config=config)
    return out
