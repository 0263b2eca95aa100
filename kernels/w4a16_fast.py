"""W4A16, the fast versions: v3 (tiled GEMM, tl.dot) and v4 (GEMV, no tl.dot) for small M.

Shapes and the format are in w4a16.py, whose ``w4a16_matmul`` checks the arguments and
calls ``launch_v3_gemm`` / ``launch_v4_gemv`` here. What makes them faster than v2:

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
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .decode import group_of_columns, load_scale, load_zero_point, split_nibbles
from .launch import Config, k_tiles_per_split, largest_power_of_two_dividing, split_k_grid, tile_coordinates

# GROUP_MODE, how a kernel finds the group of a column (tl.constexpr: readable inside the kernels)
GROUP_PER_TILE = tl.constexpr(0)  # default g_idx, each K tile inside one group
GROUP_PER_COLUMN = tl.constexpr(1)  # default g_idx, group k // group_len computed per column
GROUP_FROM_G_IDX = tl.constexpr(2)  # act-order: group g_idx[k] loaded per column

# (max M, config), from benchmarks/kernels.py --sweep on an H100 (4096^2 and 8192^2, group 128): M <= 16 from
# the CUDA-graph sweep of benchmarks/results/h100-2026-11-27 (the configs its table ran), larger M from an eager one
GEMV_TABLE = [(4, Config(block_n=128, block_k=128, split_k=8, num_warps=8, num_stages=1, unroll=4))]
GEMM_TABLE = [
    (16, Config(block_m=16, block_n=64, block_k=64, split_k=8, num_warps=4, num_stages=4)),
    (64, Config(block_m=64, block_n=64, block_k=128, split_k=4, num_warps=4, num_stages=4)),
    (256, Config(block_m=128, block_n=64, block_k=128, split_k=1, num_warps=8, num_stages=4)),
    (1 << 62, Config(block_m=128, block_n=128, block_k=64, split_k=1, num_warps=4, num_stages=3)),
]


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
