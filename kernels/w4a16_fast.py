"""W4A16, the fast versions: v3 (tiled GEMM, tl.dot), v4 and v5 (GEMV, no tl.dot).

Shapes and the format are in w4a16.py, whose ``w4a16_matmul`` checks the arguments and
calls ``launch_v3_gemm`` / ``launch_v4_gemv`` / ``launch_v5_gemv`` here. What makes v3 and v4 faster than v2:

* One byte load, two codes. A byte holds the codes of columns 2j (low nibble) and 2j+1
  (high nibble). Instead of loading every byte twice and shifting per code (v2), load a
  tile of bytes once, split it into the low and the high nibbles, and split X's tile into
  its even and odd columns: ``X[:, even] @ W_lo + X[:, odd] @ W_hi`` is the same product.
* One scale per tile. When g_idx is the default and the K tile lies inside one group,
  the tile has one scale and one zero point per output column: load BLOCK_N of them,
  not BLOCK_K * BLOCK_N. (Group g covers columns [g * group_len, (g + 1) * group_len);
  a tile of BLOCK_K columns starting at a multiple of BLOCK_K stays inside one group when
  BLOCK_K divides group_len.) Otherwise (act-order g_idx, or a group length with no large
  power of two in it) the group of every column is looked up: correct, slower.
* Byte-index masks. A mask written on the byte index (kb < K_bytes) rather than on the
  column (2 * kb < K) lets the compiler prove 16 neighbouring bytes share it, so it issues
  16-byte loads.
* Split-K. With few rows (M small) there are few output tiles; split_k programs per tile
  each take a slice of K and add into a float32 workspace, so the whole GPU streams the weight.

v5 (GEMV) goes further, because on an H100 v4 was bound by instructions and latency, not by
memory (benchmarks/results/h100-2026-11-27.md):

* Whole words. v5 views qweight as int32 words when its rows are a multiple of 4 bytes (a
  view, no copy; else it assembles each word from 4 byte loads): one 16-byte load per thread
  brings 32 codes, and X arrives as [chunks, words, 8] tiles split into x_i = X[8w + i].
* No int -> float conversion. The code goes into the mantissa of a float whose exponent is
  fixed (decode.py): a shift and a mask per code give f = 1 + q / 16 exactly.
* The zero point and the scale leave the inner loop:
      sum_k (q_k - z) x_k s = s * (16 * sum_k f_k x_k - (16 + z) * sum_k x_k)
  so v5 does one FMA per code, and per (row, chunk of a group) two more for the scale.
* One launch. v5 streams the whole K per program: no split-K, no workspace, no memset or copy
  kernel; the loads of the next K step are issued before the current one is computed.

v6 (GEMV) keeps v5's program but cuts the instructions per code from about 8 to under 4
(benchmarks/results/h100-2026-11-27-v3.md), with inline PTX that the interpreter cannot run:

* Two codes per instruction. A byte's two codes go into the two float16 halves of a register
  (prmt, then lop3 with the magic number 0x64006400: 1024 + c each), one HFMA2 takes the zero
  point off exactly ((c - z) / 16), one HFMA2 multiplies by a float16 pair of X and adds; each
  word's sum (8 codes, in float16) is converted once and scaled in float32.
* X read as int32 pairs, arranged so that each load is 16 bytes in the words' layout; one inline
  asm block (pack=4) takes 4 neighbouring words. That needs Triton to give each thread runs of 4
  consecutive words: the launcher checks the compiled layout and otherwise runs the twin.
* An arithmetic twin with the same pairs and magic numbers in float32 (PTX=False) runs in the
  interpreter, for X in bfloat16 or float32, and where the PTX path's conditions do not hold.
"""
from __future__ import annotations

import re
import warnings

import torch
import triton
import triton.language as tl

from .decode import (as_int32_words, group_of_columns, half_bits_as_float, load_scale, load_words, load_zero_point,
                     magic_pair_bits, nibble_as_mantissa, split_last_8, split_nibbles, word_dot_arithmetic,
                     word_dot_fp16x2, zero_point_half2_bits)
from .checks import is_interpreted
from .launch import Config, k_tiles_per_split, largest_power_of_two_dividing, split_k_grid, tile_coordinates

# GROUP_MODE, how a kernel finds the group of a column (tl.constexpr: readable inside the kernels)
GROUP_PER_TILE = tl.constexpr(0)  # default g_idx, each K tile inside one group
GROUP_PER_COLUMN = tl.constexpr(1)  # default g_idx, group k // group_len computed per column
GROUP_FROM_G_IDX = tl.constexpr(2)  # act-order: group g_idx[k] loaded per column
GROUP_PER_CHUNK = tl.constexpr(3)  # v5, default g_idx: each chunk of CHUNK_WORDS words inside one group

# (max M, config), from benchmarks/kernel_speed.py --sweep on an H100 (4096^2 and 8192^2, group 128): M <= 16 from
# the CUDA-graph sweep of benchmarks/results/h100-2026-11-27 (the configs its table ran), larger M from an eager one
GEMV_TABLE = [(4, Config(block_n=128, block_k=128, split_k=8, num_warps=8, num_stages=1, unroll=4))]
GEMM_TABLE = [
    (16, Config(block_m=16, block_n=64, block_k=64, split_k=8, num_warps=4, num_stages=4)),
    (64, Config(block_m=64, block_n=64, block_k=128, split_k=4, num_warps=4, num_stages=4)),
    (256, Config(block_m=128, block_n=64, block_k=128, split_k=1, num_warps=8, num_stages=4)),
    (1 << 62, Config(block_m=128, block_n=128, block_k=64, split_k=1, num_warps=4, num_stages=3)),
]
# v5: one config for every M it runs (M <= w4a16.GEMV_MAX_M), from the CUDA-graph timings of
# benchmarks/results/h100-2026-11-27-v2.md (best geometric mean over the four benchmark shapes at M = 1)
GEMV_V5_TABLE = [(1 << 62, Config(block_n=8, block_k=1024, num_warps=4, num_stages=1, unroll=16))]
# v6: one config for every M it runs, from CUDA-graph timings at M = 1 on the four benchmark shapes
# (best geometric mean of 20 configs; benchmarks/results/h100-2026-11-27-v3-exploration.txt)
GEMV_V6_TABLE = [(1 << 62, Config(block_n=4, block_k=1024, num_warps=4, num_stages=1, unroll=16))]
TABLES = {3: GEMM_TABLE, 4: GEMV_TABLE, 5: GEMV_V5_TABLE, 6: GEMV_V6_TABLE}  # version -> (max M, config) rows
X_ROWS = True  # v6 PTX path: X's pairs loaded as [BLOCK_N, ...] tiles (see w4a16_v6_gemv_kernel)
V6_PTX = True  # v6 runs its inline-PTX float16x2 path where it can (launch_v6_gemv); False: its arithmetic twin


@triton.jit
def w4a16_v3_gemm_kernel(
    X_ptr, qweight_ptr, scale_ptr, zero_ptr, g_idx_ptr, bias_ptr, Y_ptr,  # Y: float32 workspace if SPLIT_K > 1
    M, N, K, K_bytes, k_tiles,  # K_bytes = ceil(K / 2), bytes per row of qweight; k_tiles: tiles per K slice
    group_len, stride_qn, stride_sn, stride_sg, zero_row_stride,  # the format (w4a16.w4a16_matmul's layout)
    stride_xm, stride_xk, stride_ym,
    SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_MODE: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """v3: program (tile, k-slice): acc += X[:, even] @ W_lo + X[:, odd] @ W_hi over its K slice."""
    pid_m, pid_n = tile_coordinates(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N))[None, :]  # [1, BLOCK_N]
    j = tl.arange(0, BLOCK_K // 2)[:, None]  # [BLOCK_K / 2, 1]: byte j of the tile holds columns 2j, 2j+1
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for t in range(0, k_tiles):
        k0 = (pid_k * k_tiles + t) * BLOCK_K  # first column of the tile (even)
        kx = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(X_ptr + rm[:, None] * stride_xm + kx[None, :] * stride_xk,
                    mask=(rm[:, None] < M) & (kx[None, :] < K), other=0.0)  # [BLOCK_M, BLOCK_K]
        x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_M, BLOCK_K // 2, 2)))  # [BLOCK_M, BLOCK_K / 2] each
        k_even = k0 + 2 * j  # [BLOCK_K / 2, 1]
        kb = k0 // 2 + j  # byte index in the row (a mask on kb, not k_even, keeps the loads vectorized)
        mask = (kb < K_bytes) & (n < N)
        byte = tl.load(qweight_ptr + n * stride_qn + kb, mask=mask, other=0)  # [BLOCK_K / 2, BLOCK_N]
        q_even, q_odd = split_nibbles(byte)
        if GROUP_MODE == GROUP_PER_TILE:
            g = k0 // group_len
            in_bounds = n < tl.where(k0 < K, N, 0)  # no rows when the tile is past K (last K slice)
            zero_even = load_zero_point(zero_ptr, n, g, zero_row_stride, in_bounds, 4, SYMMETRIC)  # [1, BLOCK_N]
            scale_even = load_scale(scale_ptr, n, g, stride_sn, stride_sg, in_bounds)
            zero_odd, scale_odd = zero_even, scale_even
        else:
            g_even = group_of_columns(g_idx_ptr, k_even, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)
            g_odd = group_of_columns(g_idx_ptr, k_even + 1, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)
            zero_even = load_zero_point(zero_ptr, n, g_even, zero_row_stride, mask, 4, SYMMETRIC)
            zero_odd = load_zero_point(zero_ptr, n, g_odd, zero_row_stride, mask, 4, SYMMETRIC)
            scale_even = load_scale(scale_ptr, n, g_even, stride_sn, stride_sg, mask)
            scale_odd = load_scale(scale_ptr, n, g_odd, stride_sn, stride_sg, mask)
        W_even = ((q_even - zero_even).to(tl.float32) * scale_even).to(x.dtype)  # [BLOCK_K / 2, BLOCK_N]
        W_odd = ((q_odd - zero_odd).to(tl.float32) * scale_odd).to(x.dtype)
        acc = tl.dot(x_even, W_even, acc, input_precision=DOT_PRECISION)
        acc = tl.dot(x_odd, W_odd, acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:  # added once: by the first K slice
        acc += tl.where(pid_k == 0, tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32), 0.0)
    Y = Y_ptr + rm[:, None] * stride_ym + n
    mask = (rm[:, None] < M) & (n < N)
    if SPLIT_K == 1:
        tl.store(Y, acc.to(Y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(Y, acc, mask=mask)


@triton.jit
def w4a16_v4_gemv_kernel(
    X_ptr, qweight_ptr, scale_ptr, zero_ptr, g_idx_ptr, bias_ptr, Y_ptr,  # as v3
    N, K, K_bytes, k_tiles,  # K_bytes = ceil(K / 2), bytes per row of qweight
    group_len, stride_qn, stride_sn, stride_sg, zero_row_stride,
    stride_xm, stride_xk, stride_ym,
    SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_MODE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr, UNROLL: tl.constexpr,
):
    """v4: program (row m, n-block, k-slice) streams [BLOCK_N, BLOCK_K / 2]-byte tiles; no tl.dot.

    With GROUP_PER_TILE a tile of BLOCK_K columns lies in one group: one scale and one zero
    point per row and tile. The accumulator keeps a column per byte and is reduced once.
    UNROLL tiles per loop step (k_tiles is a multiple of it) put more loads in flight at once.
    """
    m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N))[:, None]  # [BLOCK_N, 1]
    j = tl.arange(0, BLOCK_K // 2)[None, :]  # [1, BLOCK_K / 2]: byte j holds columns 2j, 2j+1 of the tile
    acc = tl.zeros((BLOCK_N, BLOCK_K // 2), tl.float32)
    for t in range(0, k_tiles, UNROLL):
        for u in tl.static_range(UNROLL):
            k0 = (pid_k * k_tiles + t + u) * BLOCK_K  # first column of the tile (even)
            kx = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(X_ptr + m * stride_xm + kx * stride_xk, mask=kx < K, other=0.0).to(tl.float32)  # [BLOCK_K]
            x_even, x_odd = tl.split(tl.reshape(x, (BLOCK_K // 2, 2)))  # [BLOCK_K / 2] each
            x_even, x_odd = x_even[None, :], x_odd[None, :]
            kb = k0 // 2 + j  # byte index in the row
            mask = (n < N) & (kb < K_bytes)
            byte = tl.load(qweight_ptr + n * stride_qn + kb, mask=mask, other=0)  # [BLOCK_N, BLOCK_K / 2]
            q_even, q_odd = split_nibbles(byte)
            if GROUP_MODE == GROUP_PER_TILE:
                g = k0 // group_len
                in_bounds = n < tl.where(k0 < K, N, 0)  # no rows when the tile is past K (last K slice)
                zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, in_bounds, 4, SYMMETRIC)  # [BLOCK_N, 1]
                scale = load_scale(scale_ptr, n, g, stride_sn, stride_sg, in_bounds)  # [BLOCK_N, 1]
                acc += scale * ((q_even - zero_point).to(tl.float32) * x_even
                                + (q_odd - zero_point).to(tl.float32) * x_odd)
            else:
                k_even = k0 + 2 * j
                g_even = group_of_columns(g_idx_ptr, k_even, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)
                g_odd = group_of_columns(g_idx_ptr, k_even + 1, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)
                W_even = ((q_even - load_zero_point(zero_ptr, n, g_even, zero_row_stride, mask, 4, SYMMETRIC))
                          .to(tl.float32) * load_scale(scale_ptr, n, g_even, stride_sn, stride_sg, mask))
                W_odd = ((q_odd - load_zero_point(zero_ptr, n, g_odd, zero_row_stride, mask, 4, SYMMETRIC))
                         .to(tl.float32) * load_scale(scale_ptr, n, g_odd, stride_sn, stride_sg, mask))
                acc += W_even * x_even + W_odd * x_odd
    y = tl.sum(acc, axis=1)  # [BLOCK_N]
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if HAS_BIAS:
        y += tl.where(pid_k == 0, tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32), 0.0)
    if SPLIT_K == 1:
        tl.store(Y_ptr + m * stride_ym + n, y.to(Y_ptr.dtype.element_ty), mask=n < N)
    else:
        tl.atomic_add(Y_ptr + m * stride_ym + n, y, mask=n < N)


def _group_mode(has_g_idx: bool, group_len: int, block_k: int, smallest: int) -> tuple[int, int]:
    """(GROUP_MODE, BLOCK_K): with the default g_idx, the widest power-of-two tile inside one group if it is
    at least ``smallest`` columns (GROUP_PER_TILE), else per-column lookups with the config's BLOCK_K."""
    if has_g_idx:
        return GROUP_FROM_G_IDX.value, block_k
    per_tile = largest_power_of_two_dividing(group_len, block_k)  # the largest tile width inside one group
    if per_tile >= smallest:
        return GROUP_PER_TILE.value, per_tile
    return GROUP_PER_COLUMN.value, block_k


def _workspace(out: torch.Tensor, split_k: int) -> torch.Tensor:
    """Where the kernel writes: ``out`` itself, or a zeroed float32 buffer that split_k programs add into."""
    return out if split_k == 1 else torch.zeros(out.shape, dtype=torch.float32, device=out.device)


def launch_v3_gemm(X, qweight, scale, zero, g_idx, bias, out, layout: dict, symmetric: bool, has_g_idx: bool,
                   has_bias: bool, config: Config) -> None:
    """Launch v3 on checked arguments (w4a16.w4a16_matmul): grid (output tiles, split_k)."""
    M, K = X.shape
    N = out.shape[1]
    mode, block_k = _group_mode(has_g_idx, layout["group_len"], config.block_k, smallest=32)
    block_k = max(block_k, 32)  # two tl.dot of BLOCK_K / 2 >= 16 columns each
    split_k = config.split_k
    Y = _workspace(out, split_k)
    grid, k_tiles = split_k_grid(M, N, K, config.block_m, config.block_n, block_k, split_k)
    w4a16_v3_gemm_kernel[grid](
        X, qweight, scale, zero, g_idx, bias, Y, M, N, K, qweight.shape[1], k_tiles,
        *layout.values(), X.stride(0), X.stride(1), Y.stride(0),
        SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
        DOT_PRECISION="ieee" if X.dtype == torch.float32 else "tf32",
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=block_k, SPLIT_K=split_k, GROUP_M=config.group_m,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    if split_k > 1:
        out.copy_(Y)


def launch_v4_gemv(X, qweight, scale, zero, g_idx, bias, out, layout: dict, symmetric: bool, has_g_idx: bool,
                   has_bias: bool, config: Config) -> None:
    """Launch v4 on checked arguments: grid (M, n-blocks, split_k), M fastest so rows share weight tiles in L2."""
    M, K = X.shape
    N = out.shape[1]
    mode, block_k = _group_mode(has_g_idx, layout["group_len"], config.block_k, smallest=16)
    block_k = max(block_k, 2)
    split_k = config.split_k
    k_tiles = triton.cdiv(k_tiles_per_split(K, block_k, split_k), config.unroll) * config.unroll  # tiles past K: masked
    Y = _workspace(out, split_k)
    grid = (M, triton.cdiv(N, config.block_n), split_k)
    w4a16_v4_gemv_kernel[grid](
        X, qweight, scale, zero, g_idx, bias, Y, N, K, qweight.shape[1], k_tiles,
        *layout.values(), X.stride(0), X.stride(1), Y.stride(0),
        SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
        BLOCK_N=config.block_n, BLOCK_K=block_k, SPLIT_K=split_k, UNROLL=config.unroll,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    if split_k > 1:
        out.copy_(Y)


# ---------------------------------------------------------------- v5 (GEMV)

@triton.jit
def w4a16_v5_gemv_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, g_idx_ptr, bias_ptr, Y_ptr,  # q_ptr: qweight as int32 words, or its bytes
    N, K, K_words, K_bytes,  # K_bytes = ceil(K / 2) bytes per row of qweight, K_words = cdiv(K_bytes, 4)
    group_len, stride_qn, stride_sn, stride_sg, zero_row_stride,  # stride_qn: elements of q_ptr between rows
    stride_xm, stride_xk, stride_ym,
    WORDS: tl.constexpr,  # q_ptr holds int32 words (rows a multiple of 4 bytes), else bytes read 4 at a time
    SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_MODE: tl.constexpr,
    BLOCK_N: tl.constexpr,  # rows of W (outputs) per program
    CHUNKS: tl.constexpr, CHUNK_WORDS: tl.constexpr,  # a K step: CHUNKS chunks of CHUNK_WORDS words (8 codes a word)
):
    """v5: program (row m, n-block) streams the whole of K for BLOCK_N outputs: one launch, no workspace.

    X [M, K], words [N, K_words] int32 (word w of a row holds codes 8w .. 8w+7, nibble i = code 8w + i),
    Y [M, N]. A K step loads a [BLOCK_N, CHUNKS, CHUNK_WORDS] tile of words and the matching
    [CHUNKS, CHUNK_WORDS, 8] tile of X, split into x_i = X[8w + i] (decode.split_last_8). With
    GROUP_PER_CHUNK the launcher picks CHUNK_WORDS so that a chunk lies inside one group: one scale
    and one zero point per (row, chunk), and with f = 1 + q / 16 (exact, decode.nibble_as_mantissa:
    a shift and a mask, no int -> float conversion)
        sum_k (q_k - z) x_k s = 16 s * sum_k f_k x_k - s (16 + z) * sum_k x_k
    the code loop is one FMA per code. Otherwise (act-order g_idx, or groups that split a word)
    every code looks up its own group: correct, slower.
    """
    m, pid_n = tl.program_id(0), tl.program_id(1)
    n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N))[:, None, None]  # [BLOCK_N, 1, 1]
    chunk = tl.arange(0, CHUNKS)[None, :, None]  # [1, CHUNKS, 1]
    cx = tl.arange(0, CHUNKS)[:, None, None]  # the X tile [CHUNKS, CHUNK_WORDS, 8]: (chunk, word, nibble)
    wx = tl.arange(0, CHUNK_WORDS)[None, :, None]
    ix = tl.arange(0, 8)[None, None, :]
    STEP: tl.constexpr = CHUNKS * CHUNK_WORDS  # words per K step
    w_step = chunk * CHUNK_WORDS + tl.arange(0, CHUNK_WORDS)[None, None, :]  # [1, CHUNKS, CHUNK_WORDS], in a step
    k_step = 8 * (cx * CHUNK_WORDS + wx) + ix  # [CHUNKS, CHUNK_WORDS, 8]: the columns of a step's codes
    X_row = X_ptr + m * stride_xm
    # software pipelining by hand: the loads of step t + 1 are issued before step t is computed
    word_next = load_words(q_ptr, n, w_step, stride_qn, N, K_words, K_bytes, WORDS)  # [BLOCK_N, CHUNKS, CHUNK_WORDS]
    x_next = tl.load(X_row + k_step * stride_xk, mask=k_step < K, other=0.0)  # [CHUNKS, CHUNK_WORDS, 8]
    acc = tl.zeros((BLOCK_N, CHUNKS, CHUNK_WORDS), tl.float32)  # reduced once, after the loop
    for w0 in range(0, K_words, STEP):
        word, x = word_next, x_next.to(tl.float32)
        # the next step's loads; past the end of K (last step) they are masked off and move nothing
        word_next = load_words(q_ptr, n, w0 + STEP + w_step, stride_qn, N, K_words, K_bytes, WORDS)
        x_next = tl.load(X_row + (8 * (w0 + STEP) + k_step) * stride_xk, mask=8 * (w0 + STEP) + k_step < K, other=0.0)
        first = w0 + chunk * CHUNK_WORDS  # [1, CHUNKS, 1]: the first word of each chunk
        w = w0 + w_step  # [1, CHUNKS, CHUNK_WORDS]
        x0, x1, x2, x3, x4, x5, x6, x7 = split_last_8(x, CHUNKS, CHUNK_WORDS)  # x_i [CHUNKS, CHUNK_WORDS]
        if GROUP_MODE == GROUP_PER_CHUNK:
            in_bounds = (n < N) & (first < K_words)
            g = first * 8 // group_len  # [1, CHUNKS, 1]: the group of every code of the chunk
            scale = load_scale(scale_ptr, n, g, stride_sn, stride_sg, in_bounds)  # [BLOCK_N, CHUNKS, 1]
            zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, in_bounds, 4, SYMMETRIC).to(tl.float32)
            fx = nibble_as_mantissa(word, 0) * x0[None]  # sum_i f_i x_i over the 8 codes of each word
            fx += nibble_as_mantissa(word, 1) * x1[None]
            fx += nibble_as_mantissa(word, 2) * x2[None]
            fx += nibble_as_mantissa(word, 3) * x3[None]
            fx += nibble_as_mantissa(word, 4) * x4[None]
            fx += nibble_as_mantissa(word, 5) * x5[None]
            fx += nibble_as_mantissa(word, 6) * x6[None]
            fx += nibble_as_mantissa(word, 7) * x7[None]
            x_sum = (x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7)[None]  # [1, CHUNKS, CHUNK_WORDS]
            acc += (16.0 * scale) * fx - (scale * (16.0 + zero_point)) * x_sum
        else:
            acc += _v5_codes_times_x(word, 0, x0, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 1, x1, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 2, x2, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 3, x3, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 4, x4, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 5, x5, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 6, x6, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
            acc += _v5_codes_times_x(word, 7, x7, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                                     stride_sg, zero_row_stride, SYMMETRIC, GROUP_MODE)
    y = tl.sum(tl.sum(acc, axis=2), axis=1)  # [BLOCK_N]
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if HAS_BIAS:
        y += tl.load(bias_ptr + n, mask=n < N, other=0.0).to(tl.float32)
    tl.store(Y_ptr + m * stride_ym + n, y.to(Y_ptr.dtype.element_ty), mask=n < N)


@triton.jit
def _v5_codes_times_x(word, i: tl.constexpr, x, w, n, N, K, g_idx_ptr, scale_ptr, zero_ptr, group_len, stride_sn,
                      stride_sg, zero_row_stride, SYMMETRIC: tl.constexpr, GROUP_MODE: tl.constexpr):
    """v5's slow path: (q - z) * s * x for nibble i of every word, each code looking up its own group."""
    k = 8 * w + i  # [1, CHUNKS, CHUNK_WORDS]: the column of nibble i
    g = group_of_columns(g_idx_ptr, k, K, group_len, GROUP_MODE == GROUP_FROM_G_IDX)
    valid = (n < N) & (k < K)
    scale = load_scale(scale_ptr, n, g, stride_sn, stride_sg, valid)  # [BLOCK_N, CHUNKS, CHUNK_WORDS]
    zero_point = load_zero_point(zero_ptr, n, g, zero_row_stride, valid, 4, SYMMETRIC).to(tl.float32)
    return ((nibble_as_mantissa(word, i) * 16.0 - (16.0 + zero_point)) * scale) * x[None]  # 16 f - 16 = q


def _v5_group_mode(has_g_idx: bool, group_len: int, words: int) -> tuple[int, int]:
    """(GROUP_MODE, CHUNK_WORDS) of v5: the widest power-of-two chunk of words (at most ``words``) inside one
    group, or per-code group lookups when a word can straddle two groups or g_idx is given."""
    if not has_g_idx and group_len % 8 == 0:
        return GROUP_PER_CHUNK.value, largest_power_of_two_dividing(group_len // 8, words)
    return (GROUP_FROM_G_IDX if has_g_idx else GROUP_PER_COLUMN).value, words


def launch_v5_gemv(X, qweight, scale, zero, g_idx, bias, out, layout: dict, symmetric: bool, has_g_idx: bool,
                   has_bias: bool, config: Config) -> None:
    """Launch v5 on checked arguments: grid (M, n-blocks), M fastest so rows share weight tiles in L2.

    config.block_n: outputs per program; config.block_k: codes per K step (CHUNKS * CHUNK_WORDS * 8);
    config.unroll: the most words in a chunk (16: a chunk is a whole group of 128).
    """
    M, K = X.shape
    N, K_bytes = qweight.shape
    words = as_int32_words(qweight)
    q = words if words is not None else qweight
    words_per_step = max(config.block_k // 8, 1)
    mode, chunk_words = _v5_group_mode(has_g_idx, layout["group_len"], min(config.unroll, words_per_step))
    grid = (M, triton.cdiv(N, config.block_n))
    w4a16_v5_gemv_kernel[grid](
        X, q, scale, zero, g_idx, bias, out, N, K, triton.cdiv(K_bytes, 4), K_bytes,
        layout["group_len"], q.stride(0), layout["stride_sn"], layout["stride_sg"], layout["zero_row_stride"],
        X.stride(0), X.stride(1), out.stride(0),
        WORDS=words is not None, SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
        BLOCK_N=config.block_n, CHUNKS=max(words_per_step // chunk_words, 1), CHUNK_WORDS=chunk_words,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )


# ---------------------------------------------------------------- v6 (GEMV, two codes per instruction)

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
    X_ROWS: tl.constexpr,  # PTX: load X's pairs as a [BLOCK_N, ...] tile like the words (a layout hint), else [1, ...]
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
        if X_ROWS:  # the same shape as the words' tile: Triton gives both loads the words' layout
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
    """Whether v6 runs its inline-PTX path on X: V6_PTX on, compiled (not the interpreter), one group per chunk
    of a multiple of 4 words, X float16 read as int32 pairs a whole word (8 columns) at a time: K a multiple of 8,
    X contiguous along K, rows 4-byte aligned. Elsewhere v6 runs its arithmetic twin."""
    K = X.shape[1]
    return (V6_PTX and not is_interpreted(w4a16_v6_gemv_kernel) and X.dtype == torch.float16
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
    M, K = X.shape
    N, K_bytes = qweight.shape
    words = as_int32_words(qweight)
    q = words if words is not None else qweight
    words_per_step = max(config.block_k // 8, 1)
    mode, chunk_words = _v5_group_mode(has_g_idx, layout["group_len"], min(config.unroll, words_per_step))
    chunks = max(words_per_step // chunk_words, 1)
    grid = (M, triton.cdiv(N, config.block_n))

    def launch(ptx: bool):
        X_arg = X.view(torch.int32) if ptx else X  # the PTX path reads X as pairs of float16
        return w4a16_v6_gemv_kernel[grid](
            X_arg, q, scale, zero, g_idx, bias, out, N, K, triton.cdiv(K_bytes, 4), K_bytes,
            layout["group_len"], q.stride(0), layout["stride_sn"], layout["stride_sg"], layout["zero_row_stride"],
            X_arg.stride(0), X_arg.stride(1), out.stride(0),
            WORDS=words is not None, SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
            GROUP_WORDS=layout["group_len"] // 8 if mode == GROUP_PER_CHUNK.value else 1,
            PTX=ptx, PREFETCH=config.num_stages >= 2, X_ROWS=X_ROWS,
            EVEN=(ptx and words is not None and (K_bytes // 4) % (chunks * chunk_words) == 0
                  and N % config.block_n == 0),
            BLOCK_N=config.block_n, CHUNKS=chunks, CHUNK_WORDS=chunk_words,
            num_warps=config.num_warps, num_stages=1,
        )

    ptx = v6_uses_ptx(X, mode, chunk_words)
    compiled = launch(ptx)
    if ptx and not _v6_layout_ok(compiled):  # pack=4 would have paired the wrong elements: redo it without PTX
        launch(False)


_V6_LAYOUT_CHECKED: dict = {}  # compiled kernel (by identity) -> whether its inline asm sees 4 consecutive words


def _v6_layout_ok(compiled) -> bool:
    """True when the inline asm of a compiled v6 kernel runs on a layout that gives each thread runs of 4
    consecutive words in consecutive registers (the word axis fastest, and sizePerThread a multiple of 4 along
    it, or the whole axis in each thread; chunks are a multiple of 4 words): the pairing
    decode.word_dot_fp16x2 assumes. Triton chooses layouts itself; a config it lays out otherwise warns once
    and runs the arithmetic path."""
    key = id(compiled)
    if key not in _V6_LAYOUT_CHECKED:
        ttgir = getattr(compiled, "asm", {}).get("ttgir", "")
        found = re.search(r"elementwise_inline_asm.*?-> tensor<[0-9x]+xf32, (#[\w]+)>", ttgir)
        ok = False
        if found:
            spec = re.search(re.escape(found.group(1)) + r" = #ttg\.blocked<\{sizePerThread = \[\d+, \d+, (\d+)\], "
                             r"threadsPerWarp = \[\d+, \d+, (\d+)\], warpsPerCTA = \[\d+, \d+, (\d+)\], "
                             r"order = \[(\d+),", ttgir)
            if spec and spec.group(4) == "2":  # words fastest: runs of sizePerThread words, or all of them
                ok = int(spec.group(1)) % 4 == 0 or spec.group(2) == spec.group(3) == "1"
        if not ok:
            warnings.warn("W4A16 v6: Triton laid out this config's words so that the float16x2 inline PTX would "
                          "pair the wrong elements; running the arithmetic path instead (slower). Try another config.",
                          RuntimeWarning, stacklevel=3)
        _V6_LAYOUT_CHECKED[key] = (compiled, ok)  # keeps the kernel alive, so its id stays its own
    return _V6_LAYOUT_CHECKED[key][1]
