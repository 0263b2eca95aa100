"""Launch configurations: tile sizes, split-K, warps and pipeline depth, and how they are chosen.

A kernel launch is ``kernel[grid](args..., BLOCK_M=..., num_warps=..., num_stages=...)``.
The grid is one program per output tile, times ``split_k`` programs that each cover a
slice of the K loop and add their partial sums into a float32 workspace:

    grid = (cdiv(M, block_m) * cdiv(N, block_n), split_k)

Small M (decoding one token) makes few output tiles; there, split-K keeps every SM busy
streaming its share of the weight. Each kernel module keeps a short table of configs per
range of M, chosen by measuring on an H100 (benchmarks/kernel_speed.py --sweep); a wrapper
also accepts an explicit ``config=`` so tests and sweeps can try any of them.

Under the interpreter (CPU) ``num_warps`` and ``num_stages`` mean nothing and tiles are
numpy arrays: fewer, larger programs run fastest there.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class Config:
    """One launch configuration of a tiled kernel (block sizes are powers of two)."""

    block_m: int = 16
    block_n: int = 64
    block_k: int = 64
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3
    group_m: int = 8  # program order: group_m row-tiles share a column of weight tiles in L2
    unroll: int = 1  # W4A16 v5 / v6: the most words in a chunk; few_rows: >= 2 issues the next K step's loads early

    def __post_init__(self):
        for name in ("block_m", "block_n", "block_k", "split_k", "num_warps", "group_m", "unroll"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                raise ValueError(f"Config.{name} must be a positive power of two, got {value!r}.")

    def with_(self, **changes) -> "Config":
        return replace(self, **changes)


def pick(table: list[tuple[int, Config]], M: int) -> Config:
    """The config of the first row ``(max_M, config)`` of ``table`` with M <= max_M (the last row otherwise)."""
    for max_M, config in table:
        if M <= max_M:
            return config
    return table[-1][1]


def k_tiles_per_split(K: int, block_k: int, split_k: int) -> int:
    """How many BLOCK_K tiles each of the split_k programs of one output tile loops over."""
    return triton.cdiv(triton.cdiv(K, block_k), split_k)


def split_k_grid(M: int, N: int, K: int, block_m: int, block_n: int, block_k: int,
                 split_k: int) -> tuple[tuple[int, int], int]:
    """``(grid, k_tiles)`` of a split-K GEMM launch for Y [M, N] = X [M, K] @ W.T.

    grid = (output tiles, split_k): axis 0 numbers the cdiv(M, block_m) * cdiv(N, block_n)
    tiles of Y (``tile_coordinates`` maps a number to a tile), axis 1 the K slices. Slice s
    loops over the k_tiles BLOCK_K tiles from s * k_tiles on; the last slice may run past K
    (its loads are masked), so every program can use the same trip count.
    """
    grid = (triton.cdiv(M, block_m) * triton.cdiv(N, block_n), split_k)
    return grid, k_tiles_per_split(K, block_k, split_k)


def largest_power_of_two_dividing(n: int, cap: int) -> int:
    """2**j for the largest j with 2**j | n, at most ``cap`` (1 for odd n)."""
    return min(n & -n, cap)


@triton.jit
def tile_coordinates(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Program id -> (row tile, column tile), GROUP_M row tiles at a time.

    Consecutive programs walk down GROUP_M row tiles of one column of tiles before moving
    right, so the weight tiles they share are still in L2 (the matmul tutorial's ordering).
    """
    n_tiles_m = tl.cdiv(M, BLOCK_M)
    n_tiles_n = tl.cdiv(N, BLOCK_N)
    width = GROUP_M * n_tiles_n  # programs per band of GROUP_M row tiles
    first_m = (pid // width) * GROUP_M
    rows = tl.minimum(n_tiles_m - first_m, GROUP_M)  # the last band may be shorter
    pid_m = first_m + (pid % width) % rows
    pid_n = (pid % width) // rows
    return pid_m, pid_n


def tile_coordinates_reference(pid: int, M: int, N: int, block_m: int, block_n: int, group_m: int) -> tuple[int, int]:
    """Slow reference for :func:`tile_coordinates` in plain Python: program id -> (row tile, column tile)."""
    n_tiles_m, n_tiles_n = triton.cdiv(M, block_m), triton.cdiv(N, block_n)
    width = group_m * n_tiles_n  # programs per band of group_m row tiles
    first_m = (pid // width) * group_m
    rows = min(n_tiles_m - first_m, group_m)  # the last band may be shorter
    return first_m + (pid % width) % rows, (pid % width) // rows


# ---------------------------------------------------------------- split-K in one launch
#
# Split-K programs add partial sums, so something must zero the sums before and convert them after: two more
# kernels (a memset and a copy) per call, several microseconds of a decode step that takes 15 to 40. Instead the
# buffers are kept between calls, and the slice of a tile that arrives last (a counter per tile) reads the sum,
# writes Y and zeroes its part again: one launch per call.

_SPLIT_K_BUFFERS: dict = {}  # (device, M, N, tiles) -> (float32 [M, N] partial sums, int32 [tiles] counters)


def split_k_buffers(device, M: int, N: int, tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The zeroed buffers of finish_split_k for Y [M, N] in ``tiles`` tiles: made once per shape and device and
    reused (each call leaves them zero). Calls on one device are assumed to run one after the other (one CUDA
    stream), as a model's layers do."""
    key = (str(device), M, N, tiles)
    if key not in _SPLIT_K_BUFFERS:
        _SPLIT_K_BUFFERS[key] = (torch.zeros(M, N, dtype=torch.float32, device=device),
                                 torch.zeros(tiles, dtype=torch.int32, device=device))
    return _SPLIT_K_BUFFERS[key]


@triton.jit
def finish_split_k(acc, Y, partial, mask, arrived_ptr, SPLIT_K: tl.constexpr):
    """Add this slice's float32 ``acc`` into ``partial``; the tile's last slice stores the sum to ``Y`` (pointers of
    acc's shape) and zeroes ``partial`` and the tile's counter ``arrived_ptr`` again.

    The last slice reads the sums with atomics too (adding 0): with plain loads (ld.global.cg) after the counter's
    acquire, an H100 returned sums that missed another slice's adds on about one tile in a hundred calls, so the
    read goes where the adds went, in their order."""
    tl.atomic_add(partial, acc, mask=mask, sem="relaxed")
    tl.debug_barrier()  # every thread's adds are issued before the program says it has arrived
    arrived = tl.atomic_add(arrived_ptr, 1, sem="acq_rel")  # how many slices of this tile came before this one
    if arrived == SPLIT_K - 1:
        total = tl.atomic_add(partial, tl.zeros_like(acc), mask=mask, sem="acq_rel")  # the sum, read at L2
        total = tl.where(mask, total, 0.0)  # masked-off lanes hold no value
        tl.store(Y, total.to(Y.dtype.element_ty), mask=mask)
        tl.store(partial, tl.zeros_like(total), mask=mask)  # zero again for the next call
        tl.store(arrived_ptr, 0)


def split_for_programs(n_tiles: int, programs: int, cap: int) -> int:
    """The largest power of two s <= cap with n_tiles * s <= programs (at least 1): enough K slices to give
    about ``programs`` programs (a wave of the GPU) when the tiles alone are fewer."""
    s = 1
    while s * 2 <= cap and n_tiles * s * 2 <= programs:
        s *= 2
    return s
