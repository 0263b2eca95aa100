"""X-stationary W4A16 GEMV at M = 1 -- an experiment, dispatched nowhere.

v6 gives each thread 4 words of one row and walks K, loading the X those words meet at every step (64 bytes of X
per 16 bytes of codes); gemv_rows (history, 9236e6e) shared that X between a few rows. Here a program holds the
*whole* X row in registers, loaded once, and walks output rows instead:

    program p: rows [p * ROWS_PER_PROGRAM, (p + 1) * ROWS_PER_PROGRAM), R rows per step
    a step:    words [R, CH, 4] (the whole K of R rows, 4 consecutive words per thread, 16-byte loads, a warp's
               load 512 contiguous bytes of one row), each chunk's scale and zero point [R, CH, 1],
               decoded by v6's float16x2 PTX against the X pairs held since the start, reduced over K per row.

So X costs one 16 KB load per program (not one per row), at the price of a block-wide reduction per step.
Default g_idx only, groups of a multiple of 32 codes (a chunk of 4 words inside one group), K a multiple of 32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .decode import load_scale, load_zero_point, word_dot_arithmetic, word_dot_fp16x2

ZZ8 = tl.constexpr(-0x2BF72BF8)  # decode.zero_point_half2_bits(8): float16 -(64 + 8 / 16) in both halves


@triton.jit
def _step_loads(q_ptr, scale_ptr, zero_ptr, n, w, g, first, N, K_words, stride_q4, stride_sn, zero_row_stride,
                SYMMETRIC: tl.constexpr):
    """Words [R, CH, 4], scale [R, CH, 1] (float32) and zero points [R, CH, 1] (int32) of rows n."""
    in_bounds = (n < N) & (first < K_words)  # per chunk (K_words % 4 == 0): the mask keeps 16-byte loads
    word = tl.load(q_ptr + n * (4 * stride_q4) + w, mask=in_bounds, other=0)  # rows 16-byte aligned
    scale = load_scale(scale_ptr, n, g, stride_sn, 1, in_bounds)
    zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, in_bounds, 4, SYMMETRIC)
    return word, scale, zero_point


@triton.jit
def w4a16_xs_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, bias_ptr, Y_ptr,  # PTX: X_ptr is X's row viewed as int32 pairs
    N, K, K_words, stride_q4, stride_sn, zero_row_stride,  # stride_q4: words between rows / 4
    ROWS_PER_PROGRAM,  # output rows a program walks (a multiple of R)
    SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_WORDS: tl.constexpr, PTX: tl.constexpr,
    PREFETCH: tl.constexpr, R: tl.constexpr, CH: tl.constexpr,  # CH: chunks of 4 words, a power of 2 >= K_words / 4
):
    pid = tl.program_id(0)
    c = tl.arange(0, CH)[None, :, None]  # [1, CH, 1]
    t = tl.arange(0, 4)[None, None, :]  # [1, 1, 4]
    w = 4 * c + t  # [1, CH, 4]: word index along K
    first = 4 * c  # [1, CH, 1]
    g = first // GROUP_WORDS  # [1, CH, 1]: the chunk's group
    rr = tl.arange(0, R)[:, None, None]  # [R, 1, 1]
    if PTX:  # x_r: element t of chunk c is pair t of word 4c + r (decode.word_dot_fp16x2's order), loaded once
        x0 = tl.load(X_ptr + 16 * c + t + 0, mask=first < K_words, other=0)
        x1 = tl.load(X_ptr + 16 * c + t + 4, mask=first < K_words, other=0)
        x2 = tl.load(X_ptr + 16 * c + t + 8, mask=first < K_words, other=0)
        x3 = tl.load(X_ptr + 16 * c + t + 12, mask=first < K_words, other=0)
        # the asm runs with z = 8 (a constant operand: a per-row zero point as a broadcast operand of the packed asm
        # came out wrong on an H200 at R > 1); (8 - z) * sum(x) / 16 per chunk is added after it. Codes 9: sum(x) / 16
        x_sum = tl.sum(word_dot_fp16x2(tl.full((1, CH, 4), -0x66666667, tl.int32), x0, x1, x2, x3, ZZ8), axis=2,
                       keep_dims=True)  # [1, CH, 1]: sum(x) / 16 over each chunk
    row0 = pid * ROWS_PER_PROGRAM
    if PREFETCH:
        word_next, scale_next, zero_next = _step_loads(q_ptr, scale_ptr, zero_ptr, row0 + rr, w, g, first, N, K_words,
                                                       stride_q4, stride_sn, zero_row_stride, SYMMETRIC)
    for r0 in range(row0, row0 + ROWS_PER_PROGRAM, R):
        n = r0 + rr  # [R, 1, 1]
        if PREFETCH:
            word, scale, zero_point = word_next, scale_next, zero_next
            word_next, scale_next, zero_next = _step_loads(q_ptr, scale_ptr, zero_ptr, n + R, w, g, first, N, K_words,
                                                           stride_q4, stride_sn, zero_row_stride, SYMMETRIC)
        else:
            word, scale, zero_point = _step_loads(q_ptr, scale_ptr, zero_ptr, n, w, g, first, N, K_words, stride_q4,
                                                  stride_sn, zero_row_stride, SYMMETRIC)
        if PTX:
            s = tl.sum(word_dot_fp16x2(word, x0, x1, x2, x3, ZZ8), axis=2, keep_dims=True)  # [R, CH, 1]
            if not SYMMETRIC:
                s += (8 - zero_point).to(tl.float32) * x_sum
        else:
            s = word_dot_arithmetic(word, X_ptr, w, K, 1, -(64.0 + zero_point.to(tl.float32) * 0.0625))
        y = tl.sum(tl.sum(scale * s, axis=2), axis=1) * 16.0  # [R]
        rows = r0 + tl.arange(0, R)
        if HAS_BIAS:
            y += tl.load(bias_ptr + rows, mask=rows < N, other=0.0).to(tl.float32)
        tl.store(Y_ptr + rows, y.to(Y_ptr.dtype.element_ty), mask=rows < N)


def launch(X, qweight, scale, zero_point, bias, out, group_len: int, R: int = 2, rows_per_program: int = 32,
           num_warps: int = 4, prefetch: bool = False, ptx: bool | None = None):
    """Y[0] = X[0] @ W_hat.T for QuantLinear's 4-bit format (default g_idx), X [1, K]."""
    M, K = X.shape
    N = qweight.shape[0]
    assert K >= 1024, "fewer chunks than a warp has threads: wrong results on an H200 (replicated layout)"
    assert M == 1 and K % 32 == 0 and qweight.stride(0) % 16 == 0 and qweight.data_ptr() % 16 == 0 and group_len % 32 == 0 and rows_per_program % R == 0
    words = qweight.view(torch.int32)
    K_words = K // 8
    if ptx is None:
        ptx = X.is_cuda and X.dtype == torch.float16
    X_arg = X.view(torch.int32) if ptx else X
    CH = triton.next_power_of_2(triton.cdiv(K_words, 4))
    num_warps = min(num_warps, max(CH // 32, 1))  # more threads than chunks: wrong results on an H200 (Triton 3.6)
    grid = (triton.cdiv(N, rows_per_program),)
    return w4a16_xs_kernel[grid](
        X_arg, words, scale, zero_point, bias, out, N, K, K_words, words.stride(0) // 4, scale.stride(0),
        scale.shape[1] if scale.shape[0] > 1 else 0, rows_per_program,
        SYMMETRIC=zero_point is None, HAS_BIAS=bias is not None, GROUP_WORDS=group_len // 8, PTX=ptx,
        PREFETCH=prefetch, R=R, CH=CH,
        num_warps=num_warps, num_stages=1,
    )
