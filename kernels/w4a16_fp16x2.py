"""W4A16 v6: the GEMV (M <= 4) that decodes two codes per instruction and multiplies in float16x2.

v6 keeps v5's program (w4a16_fast.py: a program per row of X and BLOCK_N outputs, the whole K, one
launch) and cuts the instructions per code from about 8 to under 4 with inline PTX (decode.py):

* Two codes per instruction. A byte's two codes go into the two float16 halves of a register
  (prmt, then lop3 with the magic number 0x64006400: 1024 + c each); one HFMA2 takes the zero
  point off exactly ((c - z) / 16), one HFMA2 multiplies by a float16 pair of X and adds. Each
  word's sum (8 codes, in float16) is converted once and scaled in float32.
* X read as int32 pairs, arranged so that each load is 16 bytes in the words' layout; one inline
  asm block (pack=4) takes 4 neighbouring words. That needs each thread to hold runs of 4
  consecutive words, which Triton does not promise: the launcher checks the compiled layout.
* An arithmetic twin with the same pairs and magic numbers in float32 (PTX=False) runs in the
  interpreter, for X in bfloat16 or float32, and wherever the PTX path's conditions do not hold.
"""
from __future__ import annotations

import re
import warnings

import torch
import triton
import triton.language as tl

from .checks import is_interpreted
from .decode import (group_of_columns, half_bits_as_float, load_scale, load_words, load_zero_point,
                     magic_pair_bits, word_dot_arithmetic, word_dot_fp16x2, zero_point_half2_bits)
from .launch import Config, largest_power_of_two_dividing
from .w4a16_fast import GROUP_FROM_G_IDX, GROUP_PER_CHUNK, gemv_tiling

# (max M, config): one config for every M v6 runs, the best geometric mean of 20 configs over the benchmark shapes
# at M = 1 (CUDA graphs, an H100)
GEMV_V6_TABLE = [(1 << 62, Config(block_n=4, block_k=1024, num_warps=4, num_stages=1, unroll=16))]

@triton.jit
def w4a16_v6_gemv_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, g_idx_ptr, bias_ptr, Y_ptr,  # as v5; PTX: X_ptr is X viewed as int32
    N, K, K_words, K_bytes,
    group_len, stride_qn, stride_sn, stride_sg, zero_row_stride,
    stride_xm, stride_xk, stride_ym,  # PTX: stride_xm in int32 pairs of float16
    WORDS: tl.constexpr, SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_MODE: tl.constexpr,
    GROUP_WORDS: tl.constexpr,  # GROUP_PER_CHUNK: words per group (group_len / 8), a compile-time divisor
    PTX: tl.constexpr,  # the float16x2 inline PTX (launcher: v6_uses_ptx), else its arithmetic twin
    PREFETCH: tl.constexpr,  # PTX: issue the next K step's loads before this step's math (by hand)
    EVEN: tl.constexpr,  # PTX: whole K steps and n-blocks (K_words % STEP == 0, N % BLOCK_N == 0, WORDS): no masks
    BLOCK_N: tl.constexpr, CHUNKS: tl.constexpr, CHUNK_WORDS: tl.constexpr,
):
    """v6: v5's program and tiles, with the codes decoded two per instruction and multiplied in float16x2.

    Program (row m, n-block) streams the whole K for BLOCK_N outputs; a K step loads a [BLOCK_N, CHUNKS,
    CHUNK_WORDS] tile of int32 words (8 codes each). With GROUP_PER_CHUNK (a chunk inside one group) each
    word's 8 codes become 4 float16 pairs (decode.py: prmt + lop3 per pair, 1024 + c in each half), the zero
    point comes off exactly in one HFMA2 per pair ((c - z) / 16), a second HFMA2 per pair multiplies by the
    matching pair of X (X viewed as int32) and adds, and per word the two halves are summed, converted to
    float32 and added into the accumulator times 16 * scale:
        sum_k (q_k - z) x_k s = 16 s * sum_k ((q_k - z) / 16) x_k
    PTX=False runs the same pairs and magic numbers in float32 arithmetic (the interpreter cannot run inline
    PTX; X in bfloat16 or float32 needs float32 products). Other group layouts (act-order g_idx, groups that
    split a word) look up a group per code, as v5's slow path.

    The X pairs of the PTX path come in 4 tensors x_r laid out like the words: in each group of 4 words
    w .. w+3, element j of x_r is pair j of word w + r, so each thread reads 4 contiguous pairs per load
    (16 bytes) and decode.word_dot_fp16x2 (pack=4) sees the 4 pairs of each of its 4 words. That needs a
    layout with 4 consecutive words in each thread's consecutive registers: launch_v6_gemv checks it.
    """
    m, pid_n = tl.program_id(0), tl.program_id(1)
    n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N))[:, None, None]  # [BLOCK_N, 1, 1]
    chunk = tl.arange(0, CHUNKS)[None, :, None]  # [1, CHUNKS, 1]
    t = tl.arange(0, CHUNK_WORDS)[None, None, :]  # [1, 1, CHUNK_WORDS]: word in the chunk
    STEP: tl.constexpr = CHUNKS * CHUNK_WORDS  # words per K step
    w_step = chunk * CHUNK_WORDS + t  # [1, CHUNKS, CHUNK_WORDS], in a step
    X_row = X_ptr + m * stride_xm
    if PTX:
        group4 = chunk * CHUNK_WORDS + 4 * (t // 4)  # the first word of each group of 4 (CHUNK_WORDS % 4 == 0)
        x_pair = 4 * group4 + t % 4  # x_r at word w: pair (w % 4) of word group4 + r, at 4 * (group4 + r) + w % 4
        x_pair = tl.max_contiguous(tl.multiple_of(x_pair, [1, 1, 4]), [1, 1, 4])  # runs of 4 from multiples of 4
        # the same shape as the words' tile: Triton gives both loads the words' layout
        x_pair = tl.broadcast_to(x_pair, (BLOCK_N, CHUNKS, CHUNK_WORDS))
        group4 = tl.broadcast_to(group4, (BLOCK_N, CHUNKS, CHUNK_WORDS))
        if PREFETCH:
            word_next, x0_next, x1_next, x2_next, x3_next = _v6_ptx_loads(
                q_ptr, X_row, n, w_step, x_pair, group4, 0, N, K, K_words, K_bytes, stride_qn, WORDS, EVEN)
    acc = tl.zeros((BLOCK_N, CHUNKS, CHUNK_WORDS), tl.float32)  # reduced once, after the loop
    for w0 in range(0, K_words, STEP):
        w = w0 + w_step  # [1, CHUNKS, CHUNK_WORDS]
        if PTX:
            if PREFETCH:
                word, x0, x1, x2, x3 = word_next, x0_next, x1_next, x2_next, x3_next
                wn = w0 + STEP  # the next step's loads: past the end of K masked off (or, EVEN, the last step again)
                if EVEN:
                    wn = tl.minimum(wn, K_words - STEP)
                word_next, x0_next, x1_next, x2_next, x3_next = _v6_ptx_loads(
                    q_ptr, X_row, n, w_step, x_pair, group4, wn, N, K, K_words, K_bytes, stride_qn, WORDS, EVEN)
            else:
                word, x0, x1, x2, x3 = _v6_ptx_loads(
                    q_ptr, X_row, n, w_step, x_pair, group4, w0, N, K, K_words, K_bytes, stride_qn, WORDS, EVEN)
        else:
            word = load_words(q_ptr, n, w, stride_qn, N, K_words, K_bytes, WORDS)
        first = w0 + chunk * CHUNK_WORDS  # [1, CHUNKS, 1]: the first word of each chunk
        if GROUP_MODE == GROUP_PER_CHUNK:
            if PTX and EVEN:
                in_bounds = tl.full((BLOCK_N, CHUNKS, 1), 1, tl.int1)  # a constant mask: plain loads
            else:
                in_bounds = (n < N) & (first < K_words)
            g = first // GROUP_WORDS  # [1, CHUNKS, 1]: the group of every code of the chunk
            scale = load_scale(scale_ptr, n, g, stride_sn, stride_sg, in_bounds)  # [BLOCK_N, CHUNKS, 1]
            zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, in_bounds, 4, SYMMETRIC)  # int32
            if PTX:  # s = sum over each word's codes of (c - z) / 16 * x
                s = word_dot_fp16x2(word, x0, x1, x2, x3, zero_point_half2_bits(zero_point))
            else:
                s = word_dot_arithmetic(word, X_row, w, K, stride_xk, -(64.0 + zero_point.to(tl.float32) * 0.0625))
            acc += scale * s  # times 16 after the loop
        else:
            acc += _v6_word_per_code(word, X_row, w, n, N, K, stride_xk, g_idx_ptr, scale_ptr, zero_ptr, group_len,
                                     stride_sn, stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
    y = tl.sum(tl.sum(acc, axis=2), axis=1)  # [BLOCK_N]
    if GROUP_MODE == GROUP_PER_CHUNK:
        y *= 16.0  # the codes were (c - z) / 16
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if HAS_BIAS:
        y += tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32)
    tl.store(Y_ptr + m * stride_ym + n, y.to(Y_ptr.dtype.element_ty), mask=n < N)


@triton.jit
def _v6_ptx_loads(q_ptr, X_pairs, n, w_step, x_pair, group4, w0, N, K, K_words, K_bytes, stride_qn,
                  WORDS: tl.constexpr, EVEN: tl.constexpr):
    """The words of the K step starting at word w0 and the 4 tensors of X pairs they meet (v6's PTX path)."""
    if EVEN:
        word = tl.load(q_ptr + n * stride_qn + (w0 + w_step))
        x0 = tl.load(X_pairs + 4 * w0 + x_pair + 0)
        x1 = tl.load(X_pairs + 4 * w0 + x_pair + 4)
        x2 = tl.load(X_pairs + 4 * w0 + x_pair + 8)
        x3 = tl.load(X_pairs + 4 * w0 + x_pair + 12)
    else:
        word = load_words(q_ptr, n, w0 + w_step, stride_qn, N, K_words, K_bytes, WORDS)
        x0 = tl.load(X_pairs + 4 * w0 + x_pair + 0, mask=8 * (w0 + group4 + 0) < K, other=0)
        x1 = tl.load(X_pairs + 4 * w0 + x_pair + 4, mask=8 * (w0 + group4 + 1) < K, other=0)
        x2 = tl.load(X_pairs + 4 * w0 + x_pair + 8, mask=8 * (w0 + group4 + 2) < K, other=0)
        x3 = tl.load(X_pairs + 4 * w0 + x_pair + 12, mask=8 * (w0 + group4 + 3) < K, other=0)
    return word, x0, x1, x2, x3


@triton.jit
def _v6_word_per_code(word, x_row_ptr, w, n, N, K, stride_xk, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                      stride_sg, zero_row_stride, SYMMETRIC: tl.constexpr, GROUP_MODE: tl.constexpr):
    """v6's slow path: the same pairs and magic numbers, (c - z) * s * x with a group looked up per code."""
    s = tl.zeros((word * n).shape, tl.float32)
    for j in tl.static_range(4):
        p = magic_pair_bits(word, j)
        for h in tl.static_range(2):
            k = 8 * w + 2 * j + h  # [1, CHUNKS, CHUNK_WORDS]: the column of the code in half h of pair j
            code = half_bits_as_float(p >> (16 * h)) - 1024.0
            g = group_of_columns(g_idx_ptr, k, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)  # clamped past K
            valid = (n < N) & (k < K)
            scale = load_scale(scale_ptr, n, g, stride_sn, stride_sg, valid)  # [BLOCK_N, CHUNKS, CHUNK_WORDS]
            zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, valid, 4, SYMMETRIC).to(tl.float32)
            x = tl.load(x_row_ptr + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
            s += ((code - zero_point) * scale) * x
    return s


def v6_uses_ptx(X: torch.Tensor, mode: int, chunk_words: int) -> bool:
    """Whether v6 runs its inline-PTX path on X: compiled (not the interpreter), one group per chunk
    of a multiple of 4 words, X float16 read as int32 pairs a whole word (8 columns) at a time: K a multiple of 8,
    X contiguous along K, rows 4-byte aligned. Elsewhere v6 runs its arithmetic twin."""
    K = X.shape[1]
    return (not is_interpreted(w4a16_v6_gemv_kernel) and X.dtype == torch.float16
            and mode == GROUP_PER_CHUNK.value and chunk_words % 4 == 0 and K % 8 == 0 and X.stride(1) == 1
            and X.stride(0) % 2 == 0 and X.data_ptr() % 4 == 0)


def v6_fast_path(X: torch.Tensor, group_len: int, has_g_idx: bool) -> bool:
    """Whether v6 with its table's config runs its float16x2 path on X (w4a16.default_version then picks it):
    v6_uses_ptx, with chunks of 8 or more words (groups of a multiple of 64 codes), which the table's config
    lays out with 4 consecutive words a thread (chunks of 4 words it does not: it would run the twin)."""
    chunk_words = largest_power_of_two_dividing(group_len // 8, GEMV_V6_TABLE[0][1].unroll) if group_len % 8 == 0 else 1
    return not has_g_idx and chunk_words >= 8 and v6_uses_ptx(X, GROUP_PER_CHUNK.value, chunk_words)


def launch_v6_gemv(X, qweight, scale, zero, g_idx, bias, out, layout: dict, symmetric: bool, has_g_idx: bool,
                   has_bias: bool, config: Config) -> None:
    """Launch v6 on checked arguments: grid (M, n-blocks), as v5. config: block_n, block_k (codes per K step) and
    unroll (the most words in a chunk) as v5's; num_stages = 2: the PTX path issues the next K step's loads by
    hand before this step's math, 1: it does not (Triton's own pipeliner is not used: num_stages=1 at launch)."""
    K, (N, K_bytes) = X.shape[1], qweight.shape
    q, words, mode, chunks, chunk_words, grid = gemv_tiling(X, qweight, layout["group_len"], has_g_idx, config)

    def launch(ptx: bool):
        X_arg = X.view(torch.int32) if ptx else X  # the PTX path reads X as pairs of float16
        return w4a16_v6_gemv_kernel[grid](
            X_arg, q, scale, zero, g_idx, bias, out, N, K, triton.cdiv(K_bytes, 4), K_bytes,
            layout["group_len"], q.stride(0), layout["stride_sn"], layout["stride_sg"], layout["zero_row_stride"],
            X_arg.stride(0), X_arg.stride(1), out.stride(0),
            WORDS=words, SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
            GROUP_WORDS=layout["group_len"] // 8 if mode == GROUP_PER_CHUNK.value else 1,
            PTX=ptx, PREFETCH=config.num_stages >= 2,
            EVEN=(ptx and words and (K_bytes // 4) % (chunks * chunk_words) == 0
                  and N % config.block_n == 0),
            BLOCK_N=config.block_n, CHUNKS=chunks, CHUNK_WORDS=chunk_words,
            num_warps=config.num_warps, num_stages=1,
        )

    ptx = v6_uses_ptx(X, mode, chunk_words)
    compiled = launch(ptx)
    if ptx and not _layout_ok(compiled):  # pack=4 would have paired the wrong elements: redo it without PTX
        launch(False)


_LAYOUT_OK: dict = {}  # id(compiled kernel) -> (the kernel, kept alive so that its id stays its own; the answer)


def _layout_ok(compiled) -> bool:
    """Whether a compiled v6 kernel gives each thread runs of 4 consecutive words in consecutive registers, the
    pairing word_dot_fp16x2 (pack=4) assumes and Triton does not promise: read from the TTGIR's blocked layout of
    the inline asm's result (words fastest, and sizePerThread a multiple of 4 along them or the whole axis)."""
    key = id(compiled)
    if key not in _LAYOUT_OK:
        ttgir = getattr(compiled, "asm", {}).get("ttgir", "")
        result = re.search(r"elementwise_inline_asm.*?-> tensor<[0-9x]+xf32, (#\w+)>", ttgir)
        layout = result and re.search(
            re.escape(result.group(1)) + r" = #ttg\.blocked<\{sizePerThread = \[\d+, \d+, (\d+)\], threadsPerWarp = "
            r"\[\d+, \d+, (\d+)\], warpsPerCTA = \[\d+, \d+, (\d+)\], order = \[2,", ttgir)
        ok = bool(layout) and (int(layout.group(1)) % 4 == 0 or layout.group(2) == layout.group(3) == "1")
        if not ok:
            warnings.warn("W4A16 v6: Triton laid out this config's words so that the float16x2 inline PTX would "
                          "pair the wrong elements; running the arithmetic path instead (slower). Try another config.",
                          RuntimeWarning, stacklevel=3)
        _LAYOUT_OK[key] = (compiled, ok)
    return _LAYOUT_OK[key][1]
