"""W4A16, the fast versions: v3 (tiled GEMM, tl.dot) and v5 (GEMV, no tl.dot); v6 is in w4a16_fp16x2.py.

Shapes and the format are in w4a16.py, whose ``w4a16_matmul`` checks the arguments and calls
``launch_v3_gemm`` / ``launch_v5_gemv`` here. What v3 adds to v2:

* One byte load, two codes. Byte j holds the codes of columns 2j (low nibble) and 2j+1 (high
  nibble): ``X[:, even] @ W_lo + X[:, odd] @ W_hi`` is the product, each byte loaded once.
* One scale per tile. With the default g_idx, a K tile of BLOCK_K columns starting at a multiple
  of BLOCK_K lies inside one group when BLOCK_K divides group_len: BLOCK_N scales and zero points
  per tile, not BLOCK_K * BLOCK_N. Otherwise every column looks up its group: correct, slower.
* Byte-index masks. A mask on the byte index (kb < K_bytes), not on the column (2 * kb < K),
  lets the compiler prove that 16 neighbouring bytes share it: 16-byte loads.
* Split-K. With few rows there are few output tiles; split_k programs per tile each take a
  slice of K and add into a float32 workspace, so the whole GPU streams the weight.

v5 (GEMV) is bound by instructions rather than memory, so it spends fewer per code:

* Whole words: qweight viewed as int32 (a view when rows are whole aligned words, else 4 byte
  loads per word): one 16-byte load per thread brings 32 codes.
* No int -> float conversion: a shift and a mask put the code in a float's mantissa,
  f = 1 + q / 16 exactly (decode.nibble_as_mantissa).
* The zero point and the scale leave the code loop, one FMA per code:
      sum_k (q_k - z) x_k s = s * (16 * sum_k f_k x_k - (16 + z) * sum_k x_k)
* One launch: the whole K per program, no workspace; the next K step's loads are issued
  before the current step is computed.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .decode import (as_int32_words, group_of_columns, load_scale, load_words, load_zero_point, nibble_as_mantissa,
                     split_last_8, split_nibbles)
from .launch import Config, largest_power_of_two_dividing, split_k_grid, tile_coordinates

# GROUP_MODE, how a kernel finds the group of a column (tl.constexpr: readable inside the kernels)
GROUP_PER_TILE = tl.constexpr(0)  # default g_idx, each K tile inside one group
GROUP_PER_COLUMN = tl.constexpr(1)  # default g_idx, group k // group_len computed per column
GROUP_FROM_G_IDX = tl.constexpr(2)  # act-order: group g_idx[k] loaded per column
GROUP_PER_CHUNK = tl.constexpr(3)  # the GEMVs, default g_idx: each chunk of CHUNK_WORDS words inside one group

# (max M, config), measured on an H100 with benchmarks/kernel_speed.py --sweep (group 128)
GEMM_TABLE = [
    (16, Config(block_m=16, block_n=64, block_k=64, split_k=8, num_warps=4, num_stages=4)),
    (64, Config(block_m=64, block_n=64, block_k=128, split_k=4, num_warps=4, num_stages=4)),
    (256, Config(block_m=128, block_n=64, block_k=128, split_k=1, num_warps=8, num_stages=4)),
    (1 << 62, Config(block_m=128, block_n=128, block_k=64, split_k=1, num_warps=4, num_stages=3)),
]
# v5: one config for every M it runs, the best geometric mean over the benchmark shapes at M = 1
GEMV_V5_TABLE = [(1 << 62, Config(block_n=8, block_k=1024, num_warps=4, num_stages=1, unroll=16))]


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


def _group_mode(has_g_idx: bool, group_len: int, block_k: int) -> tuple[int, int]:
    """(GROUP_MODE, BLOCK_K) of v3: with the default g_idx, the widest power-of-two tile inside one group if it
    is at least 32 columns (GROUP_PER_TILE), else per-column lookups with the config's BLOCK_K."""
    if has_g_idx:
        return GROUP_FROM_G_IDX.value, block_k
    per_tile = largest_power_of_two_dividing(group_len, block_k)  # the largest tile width inside one group
    if per_tile >= 32:
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
    mode, block_k = _group_mode(has_g_idx, layout["group_len"], config.block_k)
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
    """v5: program (row m, n-block) streams the whole of K for BLOCK_N outputs (the module docstring).

    A K step loads a [BLOCK_N, CHUNKS, CHUNK_WORDS] tile of words (word w of a row holds codes 8w .. 8w+7,
    nibble i = code 8w + i) and the matching [CHUNKS, CHUNK_WORDS, 8] tile of X, split into x_i = X[8w + i].
    With GROUP_PER_CHUNK a chunk lies inside one group: one scale and zero point per (row, chunk), one FMA per
    code. Otherwise (act-order g_idx, or groups that split a word) every code looks up its own group.
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


def gemv_tiling(X, qweight, group_len: int, has_g_idx: bool, config: Config) -> tuple:
    """How the GEMVs v5 and v6 tile the call: (q, WORDS, GROUP_MODE, CHUNKS, CHUNK_WORDS, grid (M, n-blocks)).

    q: qweight viewed as int32 words [N, K_bytes / 4] when its rows are whole aligned words (WORDS), else its
    bytes. config.block_k: codes per K step (CHUNKS * CHUNK_WORDS * 8); config.unroll: the most words in a chunk.
    GROUP_PER_CHUNK takes the widest power-of-two chunk inside one group; with g_idx, or groups that split a
    word, every code looks up its group.
    """
    words = as_int32_words(qweight)
    words_per_step = max(config.block_k // 8, 1)
    chunk_words = min(config.unroll, words_per_step)
    if not has_g_idx and group_len % 8 == 0:
        mode, chunk_words = GROUP_PER_CHUNK.value, largest_power_of_two_dividing(group_len // 8, chunk_words)
    else:
        mode = (GROUP_FROM_G_IDX if has_g_idx else GROUP_PER_COLUMN).value
    grid = (X.shape[0], triton.cdiv(qweight.shape[0], config.block_n))
    q = words if words is not None else qweight
    return q, words is not None, mode, max(words_per_step // chunk_words, 1), chunk_words, grid


def launch_v5_gemv(X, qweight, scale, zero, g_idx, bias, out, layout: dict, symmetric: bool, has_g_idx: bool,
                   has_bias: bool, config: Config) -> None:
    """Launch v5 on checked arguments: grid (M, n-blocks), M fastest so rows share weight tiles in L2; config:
    block_n outputs per program, block_k and unroll as gemv_tiling says (unroll 16: a chunk is a group of 128)."""
    K, (N, K_bytes) = X.shape[1], qweight.shape
    q, words, mode, chunks, chunk_words, grid = gemv_tiling(X, qweight, layout["group_len"], has_g_idx, config)
    w4a16_v5_gemv_kernel[grid](
        X, q, scale, zero, g_idx, bias, out, N, K, triton.cdiv(K_bytes, 4), K_bytes,
        layout["group_len"], q.stride(0), layout["stride_sn"], layout["stride_sg"], layout["zero_row_stride"],
        X.stride(0), X.stride(1), out.stride(0),
        WORDS=words, SYMMETRIC=symmetric, HAS_BIAS=has_bias, GROUP_MODE=mode,
        BLOCK_N=config.block_n, CHUNKS=chunks, CHUNK_WORDS=chunk_words,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )

