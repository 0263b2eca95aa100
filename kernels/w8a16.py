"""W8A16: 8-bit weights, one scale per output channel, dequantized inside the matmul.

    Y[m, n] = sum_k X[m, k] * (q[n, k] - zero_point[n]) * scale[n] + bias[n]
            = scale[n] * sum_k X[m, k] * (q[n, k] - zero_point[n]) + bias[n]

    X           [M, K]  float16 / bfloat16 / float32 (float16 / float32 in the interpreter)
    q           [N, K]  int8 (symmetric, zero_point = 0) or uint8 (asymmetric): QuantLinear.qweight
    scale       [N, 1]  float16 ("channel") or [1, 1] ("tensor"): QuantLinear.scale
    zero_point  [N] or [1] uint8 codes (asymmetric), None (symmetric): QuantLinear.zero_point
    Y           [M, N]  X's dtype

The scale is constant along k, so it leaves the sum: the K loop multiplies integers
(exact in X's dtype) and the scale touches each output once. The weight moves 1 byte per
entry instead of 2: when M is small the matmul only streams the weight, so it can run
up to 2x faster than float16.

Versions, each correct on every shape (v5: K a multiple of 4):
    v2  GEMM: [BLOCK_M, BLOCK_N] tiles through tl.dot; int8 -> X's dtype in registers, split-K
    v4  GEMV: int32 words (4 codes a load), each code decoded into a float mantissa (no
        int -> float conversion), the zero point out of the code loop, the whole K per program:
        one launch, no workspace
    v5  few rows (few_rows.py, M <= 64): every row of X in one program, the weight tile as tl.dot's left
        operand, the integers u - z decoded two per instruction (a prmt under the float16 exponent byte)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import checks, few_rows
from .decode import as_int32_words, byte_as_mantissa, load_words
from .launch import Config, k_tiles_per_split, pick, tile_coordinates

GEMV_MAX_M = 4  # v4 up to this many rows, v2 beyond (where few_rows does not run)
# (max M, config), measured on an H100 with benchmarks/kernel_speed.py --sweep (4096^2 and 8192^2)
GEMM_TABLE = [
    (16, Config(block_m=16, block_n=32, block_k=128, split_k=2, num_warps=4, num_stages=4)),
    (64, Config(block_m=32, block_n=64, block_k=128, split_k=1, num_warps=4, num_stages=4)),
    (256, Config(block_m=128, block_n=64, block_k=64, split_k=1, num_warps=8, num_stages=4)),
    (1 << 62, Config(block_m=128, block_n=128, block_k=64, split_k=1, num_warps=8, num_stages=3)),
]
# v4: BLOCK_N outputs per program, block_k = codes per K step (4 a word); one config for every M it runs, the best
# geometric mean over the benchmark shapes at M = 1
GEMV_V4_TABLE = [(1 << 62, Config(block_n=8, block_k=1024, num_warps=4, num_stages=1))]
INTERPRETER_CONFIG = Config(block_m=16, block_n=32, block_k=32, split_k=1, num_warps=4, num_stages=1)

@triton.jit
def w8a16_v2_gemm_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, bias_ptr, Y_ptr,  # as v1; Y_ptr is the float32 workspace when SPLIT_K > 1
    M, N, K, k_tiles,
    stride_xm, stride_xk, stride_qn, stride_sn, stride_zn, stride_ym,
    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """v2: program (tile, k-slice) accumulates X[tile rows] @ (q - zero_point)[tile cols].T with tl.dot."""
    pid_m, pid_n = tile_coordinates(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    zero_point = tl.load(zero_ptr + n * stride_zn, mask=n < N, other=0).to(tl.int32)[None, :] if HAS_ZERO else 0
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    k_first = pid_k * k_tiles * BLOCK_K
    for t in range(0, k_tiles):
        k = k_first + t * BLOCK_K + tl.arange(0, BLOCK_K)
        x = tl.load(X_ptr + rm[:, None] * stride_xm + k[None, :] * stride_xk,
                    mask=(rm[:, None] < M) & (k[None, :] < K), other=0.0)  # [BLOCK_M, BLOCK_K]
        q = tl.load(q_ptr + n[None, :] * stride_qn + k[:, None],
                    mask=(n[None, :] < N) & (k[:, None] < K), other=0)  # [BLOCK_K, BLOCK_N]: W's tile, transposed
        w = (q.to(tl.int32) - zero_point).to(x.dtype)  # integers up to 255: exact in fp16/bf16
        acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)
    y = acc * tl.load(scale_ptr + n * stride_sn, mask=n < N, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        y += tl.where(pid_k == 0, tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32), 0.0)[None, :]
    mask = (rm[:, None] < M) & (n[None, :] < N)
    if SPLIT_K == 1:
        tl.store(Y_ptr + rm[:, None] * stride_ym + n[None, :], y.to(Y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(Y_ptr + rm[:, None] * stride_ym + n[None, :], y, mask=mask)


@triton.jit
def w8a16_v4_gemv_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, bias_ptr, Y_ptr,  # as v1; q_ptr: qweight as int32 words, or its bytes
    N, K, K_words,  # K_words = cdiv(K, 4) words per row (word w holds codes 4w .. 4w+3, byte i = code 4w + i)
    stride_xm, stride_xk, stride_qn, stride_sn, stride_zn, stride_ym,  # stride_qn: elements of q_ptr between rows
    WORDS: tl.constexpr,  # q_ptr holds int32 words (K a multiple of 4), else bytes read 4 at a time
    HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr,  # outputs per program, words per K step
):
    """v4: program (row m, n-block) streams [BLOCK_N, K] of the weight, BLOCK_W words a step; one launch.

    With u = the stored byte (XOR 0x80 for signed codes: u = q + 128) and z' = the zero point
    (128 for signed codes), f = 1 + u / 256 is exact (decode.byte_as_mantissa) and
        sum_k (u_k - z') x_k = 256 * sum_k (f_k - (1 + z' / 256)) x_k,
    accumulated per step as sum_i f_i x_i - (1 + z' / 256) * sum_i x_i: one FMA per code, and no
    large sum cancels at the end. The scale multiplies each output once.
    """
    m, pid_n = tl.program_id(0), tl.program_id(1)
    n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N))[:, None]  # [BLOCK_N, 1]
    if HAS_ZERO:
        zero_point = tl.load(zero_ptr + n * stride_zn, mask=n < N, other=0).to(tl.float32)
    else:
        zero_point = tl.full((BLOCK_N, 1), 128.0, tl.float32)
    offset = 1.0 + zero_point / 256.0  # exact: at most 9 significant bits
    FLIP: tl.constexpr = 0 if HAS_ZERO else 0x80
    acc = tl.zeros((BLOCK_N, BLOCK_W), tl.float32)  # reduced once, after the loop
    w_step = tl.arange(0, BLOCK_W)[None, :]  # [1, BLOCK_W]: the words of a step
    k_step = 4 * tl.arange(0, BLOCK_W)[:, None] + tl.arange(0, 4)[None, :]  # the X tile [BLOCK_W, 4]: (word, byte)
    X_row = X_ptr + m * stride_xm
    # software pipelining by hand: the loads of step t + 1 are issued before step t is computed
    word_next = load_words(q_ptr, n, w_step, stride_qn, N, K_words, K, WORDS)  # [BLOCK_N, BLOCK_W] int32
    x_next = tl.load(X_row + k_step * stride_xk, mask=k_step < K, other=0.0)
    for w0 in range(0, K_words, BLOCK_W):
        word, x = word_next, x_next.to(tl.float32)
        # the next step's loads; past the end of K (last step) they are masked off and move nothing
        word_next = load_words(q_ptr, n, w0 + BLOCK_W + w_step, stride_qn, N, K_words, K, WORDS)
        x_next = tl.load(X_row + (4 * (w0 + BLOCK_W) + k_step) * stride_xk, mask=4 * (w0 + BLOCK_W) + k_step < K,
                         other=0.0)
        x_lo, x_hi = tl.split(tl.reshape(x, (BLOCK_W, 2, 2)))  # bytes 0, 2 / 1, 3 of each word: [BLOCK_W, 2]
        x0, x2 = tl.split(x_lo)  # [BLOCK_W]
        x1, x3 = tl.split(x_hi)
        fx = byte_as_mantissa(word, 0, FLIP) * x0[None, :]  # sum_i f_i x_i over the 4 codes of each word
        fx += byte_as_mantissa(word, 1, FLIP) * x1[None, :]
        fx += byte_as_mantissa(word, 2, FLIP) * x2[None, :]
        fx += byte_as_mantissa(word, 3, FLIP) * x3[None, :]
        acc += fx - offset * (x0 + x1 + x2 + x3)[None, :]
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    y = tl.sum(acc, axis=1) * (256.0 * tl.load(scale_ptr + n * stride_sn, mask=n < N, other=0.0).to(tl.float32))
    if HAS_BIAS:
        y += tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32)
    tl.store(Y_ptr + m * stride_ym + n, y.to(Y_ptr.dtype.element_ty), mask=n < N)


def default_version(M: int, v5_runs: bool) -> int:
    """The version ``w8a16_matmul`` runs for M rows when none is asked for: v5 wherever it runs (few_rows.supports
    the call: M <= 64, K a multiple of 4), else v4 up to GEMV_MAX_M rows and v2 beyond. Measured with CUDA graphs
    on the four benchmark shapes: at M = 1 v5 runs at 0.90x to 1.03x of v4's speed on an H100 and 0.96x to 1.14x
    on an H200, the largest shape gaining most on both; v5 beats v4 at M = 4 (1.7x) and v2 at M = 16 and 64."""
    if v5_runs:
        return 5
    return 4 if M <= GEMV_MAX_M else 2



def w8a16_reference(X, qweight, scale, zero_point=None, bias=None) -> torch.Tensor:
    """Slow reference in float64: decode W_hat = (q - zero_point) * scale, then X @ W_hat.T + bias."""
    W_hat = qweight.double()  # [N, K]
    if zero_point is not None:
        W_hat = W_hat - zero_point.double()[:, None]  # [rows, 1] broadcasts over K (and N when rows = 1)
    W_hat = W_hat * scale.double()
    Y = X.double() @ W_hat.T
    return Y if bias is None else Y + bias.double()


def w8a16_matmul(X, qweight, scale, zero_point=None, bias=None, out=None, version=None, config=None):
    """``X @ ((q - zero_point) * scale).T + bias`` [M, N] in X's dtype (shapes in the module docstring).

    version: 2, 4 or 5 (None: v5 for M <= few_rows.MAX_M and K a multiple of 4; else v4 for
    M <= GEMV_MAX_M, v2 beyond); config: a launch.Config
    (None: this module's table on a GPU, a small one in the interpreter); out: an optional
    [M, N] buffer of X's dtype that every element of is written.
    """
    if qweight.dtype not in (torch.int8, torch.uint8) or qweight.dim() != 2:
        raise ValueError(f"qweight must be int8 or uint8 [N, K] (QuantLinear with n_bits=8), got {qweight.dtype} "
                         f"{tuple(qweight.shape)}.")
    N, K = qweight.shape
    checks.check_activation(X, K)
    rows, n_groups = checks.check_scale(scale, N)
    if n_groups != 1:
        raise ValueError(f"W8A16 takes one scale per output channel, got {n_groups} groups per row; use "
                         "group_size='channel' or 'tensor', or QuantLinear's dequantize path for grouped 8-bit.")
    if (zero_point is None) != (qweight.dtype == torch.int8):
        raise ValueError("Symmetric 8-bit weights are int8 with zero_point=None; asymmetric ones are uint8 with a "
                         "zero_point: pass QuantLinear.qweight and .zero_point as stored.")
    checks.check_zero_point(zero_point, rows, 8)
    checks.check_bias(bias, N)
    checks.check_device(w8a16_v2_gemm_kernel, X, qweight=qweight, scale=scale, zero_point=zero_point, bias=bias)
    M = X.shape[0]
    out = checks.output_buffer(out, M, N, X.dtype, X.device)
    if M == 0:
        return out
    if version is None:
        version = default_version(M, few_rows.supports(X, qweight, 8, K, False))
    if version not in (2, 4, 5):
        raise ValueError(f"version must be 2, 4 or 5 (or None to choose by M), got {version!r}.")
    if version == 5:
        if not few_rows.supports(X, qweight, 8, K, False):
            raise ValueError(f"version 5 needs M <= {few_rows.MAX_M} (got {M}) and rows of whole 4-byte words "
                             f"(K a multiple of 4, got {K}); use version=None to choose one that runs.")
        few_rows.launch(X, qweight, scale, zero_point, bias, out, 8, K, config)
        return out
    if config is None:
        table = GEMM_TABLE if version == 2 else GEMV_V4_TABLE
        config = INTERPRETER_CONFIG if checks.is_interpreted(w8a16_v2_gemm_kernel) else pick(table, M)
    args = (X, qweight, scale, zero_point if zero_point is not None else scale, bias if bias is not None else scale)
    strides = (X.stride(0), X.stride(1), qweight.stride(0), scale.stride(0) if rows > 1 else 0,
               1 if rows > 1 else 0)
    flags = dict(HAS_ZERO=zero_point is not None, HAS_BIAS=bias is not None)
    if version == 4:
        words = as_int32_words(qweight)
        q = words if words is not None else qweight
        grid = (M, triton.cdiv(N, config.block_n))
        w8a16_v4_gemv_kernel[grid](X, q, *args[2:], out, N, K, triton.cdiv(K, 4), X.stride(0), X.stride(1),
                                   q.stride(0), *strides[3:], out.stride(0), WORDS=words is not None,
                                   BLOCK_N=config.block_n, BLOCK_W=max(config.block_k // 4, 1), **flags,
                                   num_warps=config.num_warps, num_stages=config.num_stages)
        return out
    split_k = config.split_k
    Y = out if split_k == 1 else torch.zeros(M, N, dtype=torch.float32, device=X.device)  # split-K workspace
    k_tiles = k_tiles_per_split(K, config.block_k, split_k)
    grid = (triton.cdiv(M, config.block_m) * triton.cdiv(N, config.block_n), split_k)
    precision = "ieee" if X.dtype == torch.float32 else "tf32"
    w8a16_v2_gemm_kernel[grid](*args, Y, M, N, K, k_tiles, *strides, Y.stride(0), DOT_PRECISION=precision,
                               BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
                               SPLIT_K=split_k, GROUP_M=config.group_m, **flags, num_warps=config.num_warps,
                               num_stages=config.num_stages)
    if split_k > 1:
        out.copy_(Y)
    return out
