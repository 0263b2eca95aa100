"""Triton kernels (course_lib.kernels) against float64 references: on CPU through the interpreter, on a GPU natively.

tests/conftest.py sets TRITON_INTERPRET=1 when no GPU is present, before any test module
imports the kernels (triton.jit reads it when a kernel is defined), so these tests run on
CPU tensors through Triton's interpreter, tiny shapes, float16 and float32. With a GPU the
same tests run compiled on CUDA tensors, plus bfloat16 and the GPU-only tests at the end.

Every check poisons the output buffer with NaN (each element must be written) and bounds
the relative error ||Y - Y_ref|| / ||Y_ref|| against a float64 reference by TOLERANCE.
"""
from __future__ import annotations

import warnings

import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from course_lib import kernels  # noqa: E402
from course_lib.kernels import checks, launch, w4a16  # noqa: E402
from course_lib.kernels.launch import Config  # noqa: E402
from course_lib.quant_linear import QuantLinear, cached_dequantization  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
INTERPRETED = checks.is_interpreted(w4a16.w4a16_v2_kernel)
if not CUDA and not INTERPRETED:
    pytest.skip("no GPU, and the kernels were imported without TRITON_INTERPRET=1", allow_module_level=True)
gpu_only = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (compiled kernels, bfloat16, real sizes)")

# ||Y - ref|| / ||ref||: the output's rounding (2**-11 fp16, 2**-8 bf16) dominates; fp32 keeps
# IEEE products (tl.dot input_precision="ieee"), so only the summation order differs.
TOLERANCE = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-5}
DTYPES = [torch.float16, torch.float32, pytest.param(torch.bfloat16, marks=gpu_only)]
# (M, K, group_size, symmetric): M = 1, 3, 17; K never a multiple of the K blocks (32, 64);
# groups of 24 (not dividing a block), 32, a whole row, the whole tensor; K = 45 is odd. K = 90 and 45 give
# rows that are not a whole number of int32 words: W4A16 v5 then assembles its words from bytes.
W4_CASES = [(1, 96, 24, False), (3, 160, 32, True), (17, 90, "channel", False), (3, 45, "tensor", True),
            (17, 96, 24, True), (1, 160, 32, False)]
N = 40  # not a multiple of BLOCK_N (32 in the interpreter, 64+ on a GPU)
W4_VERSIONS = [1, 2, 3, 5, 6]  # v7 (few rows) takes fewer formats: tested on its own below


def rel_error(Y: torch.Tensor, ref: torch.Tensor) -> float:
    return ((Y.double() - ref).norm() / ref.norm()).item()


def poisoned(M: int, N: int, dtype) -> torch.Tensor:
    return torch.full((M, N), float("nan"), dtype=dtype, device=DEVICE)


def check(Y: torch.Tensor, ref: torch.Tensor, dtype, out: torch.Tensor | None = None) -> None:
    assert Y.dtype == dtype and Y.shape == ref.shape
    if out is not None:
        assert Y.data_ptr() == out.data_ptr()
    assert torch.isfinite(Y).all(), "some outputs were never written (still NaN)"
    assert rel_error(Y, ref) < TOLERANCE[dtype], rel_error(Y, ref)


def quant_layer(seed: int, K: int, n_bits: int, group_size, symmetric: bool, bias: bool = True, n_out: int = N):
    torch.manual_seed(seed)
    linear = torch.nn.Linear(K, n_out, bias=bias, device=DEVICE)
    return QuantLinear.from_linear(linear, n_bits, group_size, symmetric)


def activations(seed: int, M: int, K: int, dtype) -> torch.Tensor:
    return torch.randn(M, K, generator=torch.Generator().manual_seed(seed)).to(DEVICE, dtype)


# ------------------------------------------------------------------ W4A16

def test_w4a16_reference_is_the_quant_linear_dequantization():
    for M, K, group_size, symmetric in W4_CASES[:4]:
        layer = quant_layer(0, K, 4, group_size, symmetric)
        X = activations(1, M, K, torch.float32)
        ref = kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias)
        expected = X.double() @ layer.dequantize_weight().double().T + layer.bias.double()
        assert rel_error(ref, expected) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("version", W4_VERSIONS)
def test_w4a16_versions_match_reference(version, dtype):
    for case, (M, K, group_size, symmetric) in enumerate(W4_CASES):
        layer = quant_layer(case, K, 4, group_size, symmetric, bias=case % 2 == 0)
        X = activations(case, M, K, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias, out=out,
                                 version=version)
        check(Y, kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias), dtype, out)


@pytest.mark.parametrize("version", W4_VERSIONS)
def test_w4a16_never_reads_a_scale_past_the_last_group(version):
    # Odd K: the padding nibble's column K lies past the last group. The scale is a view into a buffer
    # whose next column is NaN, so a kernel that loads scale[n, K // group_len] for it returns NaN
    # (x is 0 there, but 0 * NaN is NaN); before the fix this read whatever followed the tensor.
    for M, K, group_size, symmetric in [(1, 45, "tensor", True), (3, 45, "channel", False), (17, 45, "tensor", False),
                                        (1, 90, "channel", True), (17, 90, 45, False)]:
        layer = quant_layer(5, K, 4, group_size, symmetric)
        rows, n_groups = layer.scale.shape
        padded = torch.full((rows, n_groups + 1), float("nan"), dtype=layer.scale.dtype, device=DEVICE)
        padded[:, :n_groups] = layer.scale
        scale = padded[:, :n_groups]  # [rows, n_groups], row stride n_groups + 1
        X = activations(K, M, K, torch.float16)
        Y = kernels.w4a16_matmul(X, layer.qweight, scale, layer.zero_point, None, layer.bias,
                                 out=poisoned(M, N, torch.float16), version=version)
        check(Y, kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias),
              torch.float16)


@pytest.mark.parametrize("version", W4_VERSIONS)
def test_w4a16_act_order_g_idx(version):
    layer = quant_layer(3, 96, 4, 16, False)
    layer.g_idx = layer.g_idx[torch.randperm(96, generator=torch.Generator().manual_seed(0))].contiguous()
    for M in (3, 17):
        X = activations(M, M, 96, torch.float16)
        expected = X.double() @ layer.dequantize_weight().double().T + layer.bias.double()
        Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, layer.g_idx, layer.bias,
                                 out=poisoned(M, N, torch.float16), version=version)
        check(Y, expected, torch.float16)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_w4a16_v6_chunks_of_whole_groups_and_words(dtype):
    """v6 with several chunks a K step and several words a chunk (the structure of its float16x2 path; in the
    interpreter its arithmetic twin): K steps past K, ragged N, groups of 32 and 64 codes, odd and even M."""
    config = Config(block_n=16, block_k=128, num_stages=2, unroll=4)  # 4 chunks of 4 words a step
    for case, (M, K, group_size, symmetric) in enumerate([(1, 160, 32, False), (3, 192, 64, True),
                                                         (4, 96, 32, False)]):
        layer = quant_layer(10 + case, K, 4, group_size, symmetric, bias=case != 1)
        X = activations(case, M, K, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias, out=out,
                                 version=6, config=config)
        check(Y, kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias), dtype, out)


# few_rows (W4A16 v7, W8A16 v5): (M, K, group_size, symmetric). M up to 64 (BLOCK_M 16, 32, 64); groups of 32,
# 64, 96 (K steps of 32 inside it, 3 steps a group), a row, the tensor
FEW_ROWS_W4_CASES = [(1, 160, 32, False), (3, 192, 64, True), (17, 128, "channel", False), (5, 256, "tensor", True),
                     (33, 96, 32, False), (64, 288, 96, True), (48, 192, 96, False)]
# K = 100 and 36: not a whole number of K steps (masked loads); K = 72: 18 words
FEW_ROWS_W8_CASES = [(1, 100, "channel", True), (3, 72, "tensor", False), (17, 100, "channel", False),
                     (40, 36, "channel", True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split_k", [1, 4])
def test_few_rows_w4a16_v7_matches_reference(dtype, split_k):
    """v7 on ragged N, M = 1..64, every group layout it takes; split_k = 4: slices past K (their scale must be
    read inside the tensor), the bias added once, and the next step's loads issued by hand (unroll = 2).
    On a GPU with float16 X: the inline-PTX decoding."""
    config = Config(block_m=16, block_n=16, block_k=32, split_k=split_k, num_stages=2, unroll=2 if split_k > 1 else 1)
    for case, (M, K, group_size, symmetric) in enumerate(FEW_ROWS_W4_CASES):
        layer = quant_layer(20 + case, K, 4, group_size, symmetric, bias=case % 2 == 0)
        rows, n_groups = layer.scale.shape
        padded = torch.full((rows, n_groups + 1), float("nan"), dtype=layer.scale.dtype, device=DEVICE)
        padded[:, :n_groups] = layer.scale
        scale = padded[:, :n_groups]  # NaN right after each row's last group
        X = activations(case, M, K, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w4a16_matmul(X, layer.qweight, scale, layer.zero_point, None, layer.bias, out=out, version=7,
                                 config=config)
        check(Y, kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias), dtype, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split_k", [1, 2])
def test_few_rows_w8a16_v5_matches_reference(dtype, split_k):
    config = Config(block_m=16, block_n=16, block_k=64, split_k=split_k, num_stages=2, unroll=2 if split_k > 1 else 1)
    for case, (M, K, group_size, symmetric) in enumerate(FEW_ROWS_W8_CASES):
        layer = quant_layer(30 + case, K, 8, group_size, symmetric, bias=case % 2 == 1)
        X = activations(case, M, K, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w8a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, layer.bias, out=out, version=5,
                                 config=config)
        check(Y, kernels.w8a16_reference(X, layer.qweight, layer.scale, layer.zero_point, layer.bias), dtype, out)


def test_few_rows_split_k_leaves_its_buffers_zero():
    """Split-K slices add into buffers kept between calls; the last slice of each n-block writes Y and zeroes
    its part again, so the next call (any split, same shape) starts from zero."""
    layer = quant_layer(40, 256, 4, 64, False)
    X = activations(40, 3, 256, torch.float16)
    ref = kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias)
    for split_k in (4, 2, 4):
        config = Config(block_m=16, block_n=16, block_k=32, split_k=split_k)
        Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias,
                                 out=poisoned(3, N, torch.float16), version=7, config=config)
        check(Y, ref, torch.float16)
        partial, arrived = launch.split_k_buffers(X.device, 3, N, -(-N // 16))
        assert not partial.any() and not arrived.any()


def test_few_rows_decodes_codes_in_column_order():
    """The joins put code i of word w at column 8w + i (4 bits) / 4w + i (8 bits): one weight row with a single
    nonzero code at each position in turn picks out exactly that column of X."""
    K = 64
    X = activations(0, 16, K, torch.float32)
    for n_bits, version, matmul in ((4, 7, kernels.w4a16_matmul), (8, 5, kernels.w8a16_matmul)):
        for k in (0, 1, 5, 7, 8, 13, 63):
            codes = torch.zeros(16, K, dtype=torch.uint8)
            codes[:, k] = 1
            if n_bits == 4:
                qweight = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(DEVICE)
                zero_point = torch.zeros(16 * 2 // 2, dtype=torch.uint8, device=DEVICE)  # 16 rows x 2 groups of 32
                args = (qweight, torch.ones(16, 2, dtype=torch.float16, device=DEVICE), zero_point, None)
            else:
                args = (codes.to(DEVICE), torch.ones(16, 1, dtype=torch.float16, device=DEVICE),
                        torch.zeros(16, dtype=torch.uint8, device=DEVICE))
            Y = matmul(X, *args, version=version)
            assert torch.equal(Y, X[:, k:k + 1].expand(16, 16)), (n_bits, k)


def test_few_rows_explains_what_it_cannot_run():
    X = activations(0, 3, 96, torch.float16)
    for group_size in (24, 16, 48):  # no K step of 32 inside one group
        layer = quant_layer(0, 96, 4, group_size, False)
        with pytest.raises(ValueError, match="groups of a multiple of 32"):
            kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, version=7)
    layer = quant_layer(0, 96, 4, 32, False)
    with pytest.raises(ValueError, match="M <= 64"):
        kernels.w4a16_matmul(activations(0, 65, 96, torch.float16), layer.qweight, layer.scale, layer.zero_point,
                             version=7)
    with pytest.raises(ValueError, match="default g_idx"):
        kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, layer.g_idx.flip(0).contiguous(),
                             version=7)
    layer = quant_layer(0, 45, 8, "channel", True)
    with pytest.raises(ValueError, match="K a multiple of 4"):
        kernels.w8a16_matmul(activations(0, 3, 45, torch.float16), layer.qweight, layer.scale, version=5)


def test_default_versions_by_rows_and_format():
    """w4a16: v6 for one row (float16x2 path), v7 for 2..64 rows where few_rows runs, v5 / v3 / v1 otherwise;
    w8a16: v5 for 1..64 rows where few_rows runs (K a multiple of 4), else v4 / v2."""
    assert [w4a16.default_version(M, True, True) for M in (1, 2, 4, 64)] == [6, 7, 7, 7]
    assert [w4a16.default_version(M, False, True) for M in (1, 2)] == [5, 7]
    assert [w4a16.default_version(M, True, False) for M in (1, 4, 5, 64, 1024)] == [6, 6, 3, 3, 1]
    from course_lib.kernels import few_rows, w8a16

    assert [w8a16.default_version(M, True) for M in (1, 2, 4, 64)] == [5, 5, 5, 5]
    assert [w8a16.default_version(M, False) for M in (1, 4, 5, 64)] == [4, 4, 2, 2]
    layer = quant_layer(0, 96, 8, "channel", True)
    X = activations(0, 3, 96, torch.float16)
    assert few_rows.supports(X, layer.qweight, 8, 96, False)
    assert not few_rows.supports(activations(0, 65, 96, torch.float16), layer.qweight, 8, 96, False)
    assert not few_rows.supports(activations(0, 3, 45, torch.float16), quant_layer(0, 45, 8, "channel", True).qweight,
                                 8, 45, False)


def test_w4a16_split_k_adds_every_slice_and_the_bias_once():
    # v3, 5 K tiles, 2 a slice: the last slice lies past K
    config = Config(block_m=16, block_n=16, block_k=32, split_k=4)
    layer = quant_layer(5, 160, 4, 32, False)
    X = activations(5, 17, 160, torch.float32)
    Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias,
                             out=poisoned(17, N, torch.float32), version=3, config=config)
    check(Y, kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias),
          torch.float32)


def test_w4a16_wrapper_explains_bad_arguments():
    layer = quant_layer(0, 96, 4, 24, False)
    args = (layer.qweight, layer.scale, layer.zero_point)
    X = activations(0, 3, 96, torch.float16)
    for bad, message in [
        (X.to(torch.int32), "float16, bfloat16 or float32"), (X[None], "must be 2-D"),
        (X[:, :94], "needs 47 bytes per row"),
    ]:
        with pytest.raises(ValueError, match=message):
            kernels.w4a16_matmul(bad, *args)
    with pytest.raises(ValueError, match="packed uint8 stream"):
        kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point[:-1])
    with pytest.raises(ValueError, match="float16 \\[rows, n_groups\\]"):
        kernels.w4a16_matmul(X, layer.qweight, layer.scale.float(), layer.zero_point)
    with pytest.raises(ValueError, match="out must be a contiguous"):
        kernels.w4a16_matmul(X, *args, out=torch.empty(3, N + 1, dtype=torch.float16, device=DEVICE))
    for version in (4, 8):
        with pytest.raises(ValueError, match="version must be"):
            kernels.w4a16_matmul(X, *args, version=version)
    if not CUDA:
        with pytest.raises(ValueError, match="does not support bfloat16"):
            kernels.w4a16_matmul(X.bfloat16(), *args)


@triton.jit
def _tile_coordinates_probe(out_ptr, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Writes launch.tile_coordinates(pid) of every program pid to out [n_programs, 2]."""
    pid = tl.program_id(0)
    pid_m, pid_n = launch.tile_coordinates(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    tl.store(out_ptr + 2 * pid, pid_m)
    tl.store(out_ptr + 2 * pid + 1, pid_n)


def test_launch_grid_and_tile_order_match_their_python_references():
    """split_k_grid covers every output tile and K tile; the jitted tile_coordinates equals its Python reference."""
    for M, N, K, bm, bn, bk, split_k, group_m in [(17, 40, 160, 16, 16, 32, 4, 8), (100, 70, 45, 16, 32, 64, 1, 2),
                                                   (3, 130, 96, 16, 16, 32, 8, 4)]:
        (tiles, slices), k_tiles = launch.split_k_grid(M, N, K, bm, bn, bk, split_k)
        n_m, n_n = -(-M // bm), -(-N // bn)
        assert tiles == n_m * n_n and slices == split_k and (k_tiles - 1) * split_k < -(-K // bk) <= k_tiles * split_k
        out = torch.full((tiles, 2), -1, dtype=torch.int32, device=DEVICE)
        _tile_coordinates_probe[(tiles,)](out, M, N, BLOCK_M=bm, BLOCK_N=bn, GROUP_M=group_m)
        expected = [launch.tile_coordinates_reference(pid, M, N, bm, bn, group_m) for pid in range(tiles)]
        assert out.tolist() == [list(t) for t in expected]
        assert sorted(expected) == [(i, j) for i in range(n_m) for j in range(n_n)]  # every tile exactly once


# ------------------------------------------------------------------ W8A16

# (M, K, group_size, symmetric); K = 45 is not a whole number of 4-byte words (W8A16 v4 then assembles its words
# from bytes). v5 (few rows, K a multiple of 4) is tested on its own above.
W8_CASES = [(1, 100, "channel", True), (3, 72, "tensor", False), (17, 100, "channel", False), (3, 100, "tensor", True),
            (1, 45, "channel", False), (3, 45, "channel", True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("version", [2, 4])
def test_w8a16_versions_match_reference(version, dtype):
    for case, (M, K, group_size, symmetric) in enumerate(W8_CASES):
        layer = quant_layer(case, K, 8, group_size, symmetric, bias=case % 2 == 0, n_out=N)
        X = activations(case, M, K, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w8a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, layer.bias, out=out,
                                 version=version)
        expected = X.double() @ layer.dequantize_weight().double().T
        if layer.bias is not None:
            expected += layer.bias.double()
        check(Y, expected, dtype, out)
        ref = kernels.w8a16_reference(X, layer.qweight, layer.scale, layer.zero_point, layer.bias)
        assert rel_error(ref, expected) < 1e-12


def test_w8a16_rejects_grouped_scales():
    layer = quant_layer(0, 96, 8, 32, True)
    with pytest.raises(ValueError, match="one scale per output channel"):
        kernels.w8a16_matmul(activations(0, 2, 96, torch.float16), layer.qweight, layer.scale, layer.zero_point)
    assert not kernels.supports(layer) and kernels.supports(quant_layer(0, 96, 8, "channel", False))


# ------------------------------------------------------------------ W8A8

def per_token_rows(dtype) -> torch.Tensor:
    """[17, 1100] rows of different ranges, with an all-zero row (5), constant rows (6, 7) and one entry (8)."""
    X = activations(0, 17, 1100, torch.float32) * torch.linspace(0.1, 10, 17, device=DEVICE)[:, None]
    X[5], X[6], X[7] = 0, -2.5, 3.0
    X[8] = 0
    X[8, 1099] = -7.0
    return X.to(dtype)


def assert_same_per_token(q, scale, q_lib, scale_lib) -> None:
    """Equal to course_lib.act_quant's (q, scale); on a GPU its division by 127 may round the scale 1 ulp away
    (torch multiplies by the reciprocal), so there the scale may be 1 ulp off and a code 1 off."""
    assert q.shape == q_lib.shape and scale.shape == scale_lib.shape == (q.shape[0], 1)
    if not CUDA:
        assert torch.equal(scale, scale_lib) and torch.equal(q, q_lib)
        return
    ulp = torch.nextafter(scale_lib, torch.full_like(scale_lib, float("inf"))) - scale_lib
    assert ((scale - scale_lib).abs() <= ulp).all()
    same = (scale == scale_lib).expand_as(q)
    assert torch.equal(q[same], q_lib[same]) and (q.int() - q_lib.int()).abs().max() <= 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_quantize_per_token_is_the_librarys(dtype):
    """kernels.quantize_per_token and its reference give course_lib.act_quant.quantize_per_token(X, 8)'s values
    and shapes: q [M, K] int8, scale [M, 1] float32; an all-zero row gets scale 1, a constant row codes +-1."""
    from course_lib.act_quant import quantize_per_token as library_quantize_per_token

    X = per_token_rows(dtype)
    q_lib, scale_lib = library_quantize_per_token(X, 8)
    q_ref, scale_ref = kernels.quantize_per_token_reference(X)
    assert_same_per_token(q_ref, scale_ref, q_lib, scale_lib)
    q, scale = kernels.quantize_per_token(X)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert torch.equal(scale, scale_ref) and torch.equal(q, q_ref)
    assert_same_per_token(q, scale, q_lib, scale_lib)
    assert scale[5] == 1 and (q[5] == 0).all() and (q[6] == -1).all() and (q[7] == 1).all() and q[8, 1099] == -127


@pytest.mark.parametrize("dtype", DTYPES)
def test_w8a8_matches_reference(dtype):
    for case, M in enumerate((1, 3, 17)):
        layer = quant_layer(case, 100, 8, "channel" if case else "tensor", True, bias=case != 1)
        X = activations(case, M, 100, dtype)
        out = poisoned(M, N, dtype)
        Y = kernels.w8a8_linear(X, layer.qweight, layer.scale, layer.bias, out=out)
        check(Y, kernels.w8a8_reference(X, layer.qweight, layer.scale, layer.bias), dtype, out)
        # and close to the unquantized-activation product: per-token int8 costs well under 2%
        dense = X.double() @ layer.dequantize_weight().double().T + (0 if layer.bias is None else layer.bias.double())
        assert rel_error(Y, dense) < 0.02


def test_w8a8_matmul_takes_the_librarys_per_token_codes():
    """kernels.w8a8_matmul takes (q_x, scale_x [M, 1]) as course_lib.act_quant.quantize_per_token returns them,
    and names what is wrong with a scale_x of another shape."""
    from course_lib.act_quant import quantize_per_token as library_quantize_per_token

    layer = quant_layer(0, 100, 8, "channel", True)
    X = activations(0, 3, 100, torch.float32)
    q_x, scale_x = library_quantize_per_token(X, 8)
    Y = kernels.w8a8_matmul(q_x, scale_x, layer.qweight, layer.scale, layer.bias, out_dtype=torch.float32)
    check(Y, kernels.w8a8_reference(X, layer.qweight, layer.scale, layer.bias), torch.float32)
    with pytest.raises(ValueError, match=r"scale_x must be float32 \[3, 1\]"):
        kernels.w8a8_matmul(q_x, scale_x.reshape(3), layer.qweight, layer.scale)


# ------------------------------------------------------------------ QuantLinear integration

def test_kernel_hook_runs_the_kernels_on_any_leading_shape():
    for n_bits, group_size, symmetric in [(4, 32, False), (4, "channel", True), (8, "channel", True)]:
        layer = quant_layer(0, 96, n_bits, group_size, symmetric)
        x = activations(1, 10, 96, torch.float32).reshape(2, 5, 96)
        expected = torch.nn.functional.linear(x.double(), layer.dequantize_weight().double(), layer.bias.double())
        layer.kernel = kernels.quant_linear_forward
        y = layer(x)
        assert y.shape == (2, 5, N) and rel_error(y, expected) < TOLERANCE[torch.float32]
    layer = quant_layer(0, 96, 3, 32, False)
    assert not kernels.supports(layer)
    with pytest.raises(ValueError, match="No kernel for n_bits=3"):
        kernels.quant_linear_forward(activations(0, 2, 96, torch.float32), layer)


def test_w8a8_hook_needs_symmetric_8_bit_channels():
    layer = quant_layer(0, 96, 8, "channel", True)
    x = activations(2, 4, 96, torch.float16)
    layer.kernel = kernels.w8a8_forward
    check(layer(x), kernels.w8a8_reference(x, layer.qweight, layer.scale, layer.bias), torch.float16)
    layer = quant_layer(0, 96, 4, 32, True)
    with pytest.raises(ValueError, match="symmetric=True"):
        kernels.w8a8_forward(x, layer)


def test_w8a8_hook_runs_any_layer_with_an_int8_weight():
    """Through the layers' contract (int8_weight), not QuantLinear's attributes: a per-token W8A8Linear runs,
    a static one (its input scale would be ignored) and an NF4 layer are refused."""
    from course_lib.nf4 import NF4Linear
    from course_lib.w8a8 import W8A8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40).to(DEVICE)
    x = activations(2, 4, 96, torch.float16)
    layer = W8A8Linear.from_linear(linear, act_scheme="per_token")
    layer.kernel = kernels.w8a8_forward
    check(layer(x), kernels.w8a8_reference(x, layer.qweight, layer.scale, layer.bias), torch.float16)
    static = W8A8Linear.from_linear(linear, act_scheme="per_tensor", input_absmax=4.0)
    with pytest.raises(ValueError, match="static per-tensor input_scale"):
        kernels.w8a8_forward(x, static)
    with pytest.raises(ValueError, match="NF4Linear stores no symmetric per-row int8 weight"):
        kernels.w8a8_forward(x, NF4Linear.from_linear(linear.cpu(), 32))


def random_llama(seed: int, hidden: int, intermediate: int, layers: int, vocab: int, heads: int, kv_heads: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=intermediate,
                         vocab_size=vocab, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def kernel_vs_dequantize_logits(model, ids: torch.Tensor, hook) -> float:
    """Relative difference of the logits: every QuantLinear through ``hook`` vs the dequantize path."""
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    with torch.no_grad():
        with cached_dequantization(model):  # dense W_hat and F.linear, whatever the device
            dense = model(ids).logits.double()
        for layer in layers:
            layer.kernel = hook
        try:
            fast = model(ids).logits
        finally:
            for layer in layers:
                layer.kernel = None
    return rel_error(fast, dense)


@pytest.mark.parametrize("bits, group_size", [(4, 64), (8, "channel")])
def test_tiny_llama_same_logits_through_the_kernels(bits, group_size):
    """The CPU twin of the real-model GPU test: RTN W4 g64 / W8 per channel, one token (decoding) and a prompt."""
    from course_lib.rtn import RTNConfig, quantize_model

    model = quantize_model(random_llama(0, 128, 256, 2, 100, 4, 2).to(DEVICE), RTNConfig(bits, group_size),
                           progress=False)
    ids = torch.randint(0, 100, (1, 12), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    for rows in (ids[:, :1], ids):  # M = 1 and 12 into every linear
        assert kernel_vs_dequantize_logits(model, rows, kernels.quant_linear_forward) < 1e-5, rows.shape


# ------------------------------------------------------------------ GPU only

@gpu_only
def test_forward_uses_the_kernels_on_cuda_only_when_it_can(monkeypatch):
    from course_lib.kernels import dispatch

    calls = []
    original = dispatch.quant_linear_forward
    monkeypatch.setattr(dispatch, "quant_linear_forward", lambda x, layer: calls.append(1) or original(x, layer))
    layer = quant_layer(0, 96, 4, 32, False)
    x = activations(0, 3, 96, torch.float16)
    y = layer(x)
    assert len(calls) == 1 and rel_error(y, x.double() @ layer.dequantize_weight().double().T
                                         + layer.bias.double()) < TOLERANCE[torch.float16]
    layer(x.clone().requires_grad_())  # autograd needs the dequantize path
    with cached_dequantization(layer):
        layer(x)
    assert len(calls) == 1
    quant_layer(0, 96, 3, 32, False)(x)  # 3 bits: no kernel
    assert len(calls) == 1


REAL_SHAPES = [(576, 1536, 64), (1536, 576, 64), (576, 576, 192), (4096, 4096, 128), (11008, 4096, 128)]


@gpu_only
@pytest.mark.parametrize("K, n_out, group_size", REAL_SHAPES)
def test_tuned_configs_on_real_shapes(K, n_out, group_size):
    """The tables' configs (split-K, block sizes) on the model's and the benchmark's shapes, M from 1 to 300."""
    layers = [quant_layer(0, K, 4, group_size, False, n_out=n_out), quant_layer(1, K, 8, "channel", True, n_out=n_out)]
    for layer in layers:
        W_hat = layer.dequantize_weight().double()
        for M in (1, 4, 5, 16, 64, 300):
            for dtype in (torch.float16, torch.bfloat16):
                X = activations(M, M, K, dtype)
                check(kernels.quant_linear_forward(X, layer), X.double() @ W_hat.T + layer.bias.double(), dtype)
                if layer.n_bits == 8:
                    check(kernels.w8a8_forward(X, layer),
                          kernels.w8a8_reference(X, layer.qweight, layer.scale, layer.bias), dtype)


# (K, N, group_size, symmetric, config or None for the table): real sizes, and ones off the even fast path
# (K_words not a multiple of the K step: masked loads; N not a multiple of BLOCK_N); the second config issues
# the next K step's loads by hand
V6_GPU_CASES = [(4096, 4096, 128, False, None), (11008, 4096, 128, True, None), (4096, 11008, 128, False, None),
                (576, 1536, 64, False, None), (1088, 202, 64, False, None),
                (2048, 264, 128, True, Config(block_n=4, block_k=1024, num_warps=4, num_stages=2, unroll=16))]


@gpu_only
@pytest.mark.parametrize("K, n_out, group_size, symmetric, config", V6_GPU_CASES)
def test_w4a16_v6_ptx_path_matches_reference_and_arithmetic_twin(K, n_out, group_size, symmetric, config,
                                                                  monkeypatch):
    """v6's float16x2 inline PTX on float16 X: against the float64 reference, and against its arithmetic twin
    (the path the CPU tests run), M = 1 to 4, with a NaN-poisoned output; both paths must be the ones meant,
    and v6 (its float16x2 path) is what w4a16_matmul picks by default for float16 X at these M."""
    from course_lib.kernels import w4a16_fp16x2

    layer = quant_layer(K, K, 4, group_size, symmetric, n_out=n_out)
    uses_ptx = w4a16_fp16x2.v6_uses_ptx
    for M in (1, 3, 4):
        X = activations(M, M, K, torch.float16)
        ref = kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias)
        chunk_words = min(group_size // 8, (config or w4a16_fp16x2.GEMV_V6_TABLE[0][1]).unroll)
        assert uses_ptx(X, w4a16_fp16x2.GROUP_PER_CHUNK.value, chunk_words)
        outputs = {}
        for ptx in (True, False):  # False: the launcher is told the PTX path does not apply
            monkeypatch.setattr(w4a16_fp16x2, "v6_uses_ptx", uses_ptx if ptx else lambda *args: False)
            out = poisoned(M, n_out, torch.float16)
            with warnings.catch_warnings():  # the layout check must not fall back to the arithmetic path
                warnings.filterwarnings("error", message="W4A16 v6", category=RuntimeWarning)
                Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, None, layer.bias,
                                         out=out, version=6, config=config)
            check(Y, ref, torch.float16, out)
            outputs[ptx] = Y
        assert rel_error(outputs[True], outputs[False].double()) < TOLERANCE[torch.float16]
        monkeypatch.setattr(w4a16_fp16x2, "v6_uses_ptx", uses_ptx)
        if config is None and M == 1:
            assert w4a16.default_version(M, w4a16_fp16x2.v6_fast_path(X, group_size, False)) == 6


# (K, N, group_size, symmetric): benchmark and model sizes, and one off the even path (K_words not a whole
# number of K steps per split: masked loads; N not a multiple of BLOCK_N)
FEW_ROWS_GPU_CASES = [(4096, 4096, 128, False), (11008, 4096, 128, True), (576, 1536, 64, False),
                      (1088, 202, 64, True)]


@gpu_only
@pytest.mark.parametrize("K, n_out, group_size, symmetric", FEW_ROWS_GPU_CASES)
def test_few_rows_ptx_path_matches_reference_and_arithmetic_twin(K, n_out, group_size, symmetric, monkeypatch):
    """W4A16 v7 and W8A16 v5 with their inline-PTX decoding (float16 X): against the float64 reference and
    against the arithmetic twin the CPU tests run (the same integers into the same dot), M = 1 to 64, with the
    tables' configs and a NaN-poisoned output."""
    from course_lib.kernels import few_rows

    w4 = quant_layer(K, K, 4, group_size, symmetric, n_out=n_out)
    uses_ptx = few_rows.uses_ptx
    w8 = quant_layer(K + 1, K, 8, "channel", symmetric, n_out=n_out)
    for M in (1, 5, 16, 64):
        X = activations(M, M, K, torch.float16)
        runs = {
            "W4A16 v7": (lambda out: kernels.w4a16_matmul(X, w4.qweight, w4.scale, w4.zero_point, None, w4.bias,
                                                          out=out, version=7),
                         kernels.w4a16_reference(X, w4.qweight, w4.scale, w4.zero_point, None, w4.bias)),
            "W8A16 v5": (lambda out: kernels.w8a16_matmul(X, w8.qweight, w8.scale, w8.zero_point, w8.bias, out=out,
                                                          version=5),
                         kernels.w8a16_reference(X, w8.qweight, w8.scale, w8.zero_point, w8.bias)),
        }
        for name, (run, ref) in runs.items():
            outputs = {}
            assert uses_ptx(X)
            for ptx in (True, False):  # False: the launcher is told the PTX path does not apply
                monkeypatch.setattr(few_rows, "uses_ptx", uses_ptx if ptx else lambda X: False)
                out = poisoned(M, n_out, torch.float16)
                outputs[ptx] = run(out)
                check(outputs[ptx], ref, torch.float16, out)
            assert rel_error(outputs[True], outputs[False].double()) < 1e-4, (name, M)


@gpu_only
def test_few_rows_split_k_sums_every_slice_under_load():
    """The split-K race an H100 showed: with 2 or 4 slices on 4096 x 11008 at M = 4 and 8, the last slice read
    sums that missed another slice's adds on about one tile in a hundred calls (launch.finish_split_k). Many
    calls, each checked: any missed slice shows as a large error."""
    layer = quant_layer(7, 4096, 4, 128, False, bias=False, n_out=11008)
    for M in (4, 8):
        X = activations(M, M, 4096, torch.float16)
        ref = kernels.w4a16_reference(X, layer.qweight, layer.scale, layer.zero_point)
        for split_k in (2, 4):
            config = Config(block_m=16, block_n=64, block_k=128, split_k=split_k, num_stages=1, unroll=2)
            for _ in range(8):
                Y = kernels.w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, version=7, config=config)
                check(Y, ref, torch.float16)


@gpu_only
def test_smollm2_shaped_model_same_logits_through_the_kernels():
    """SmolLM2-135M's architecture (hidden 576, intermediate 1536, 9/3 heads), random weights, W4 g64."""
    from course_lib.rtn import RTNConfig, quantize_model

    model = random_llama(0, 576, 1536, 4, 49152, 9, 3).to(DEVICE)
    quantize_model(model, RTNConfig(4, 64), progress=False)
    ids = torch.randint(0, 49152, (2, 64), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    assert kernel_vs_dequantize_logits(model, ids, None) < 1e-4  # hook None: forward picks the kernels
    assert kernel_vs_dequantize_logits(model.half(), ids, None) < 1e-2


@gpu_only
@pytest.mark.parametrize("bits, group_size", [(4, 64), (8, "channel")])
def test_default_model_same_logits_through_the_kernels(bits, group_size):
    """The real default model, RTN on every linear but lm_head, fp32 and fp16, at the row counts a model meets:
    one token (decoding: the GEMVs), a prompt (the few-rows kernels) and two long sequences (the GEMMs)."""
    import copy

    from course_lib.models import load_model
    from course_lib.rtn import RTNConfig, quantize_model

    try:
        model, tokenizer = load_model(device="cuda")
    except FileNotFoundError as err:
        pytest.skip(f"the default model is not installed here: {err}")
    quantize_model(model, RTNConfig(bits, group_size), progress=False)
    prompt = tokenizer("The capital of France is the city of", return_tensors="pt").input_ids.cuda()
    long = torch.randint(0, model.config.vocab_size, (2, 160), generator=torch.Generator().manual_seed(0)).cuda()
    half = copy.deepcopy(model).half()
    for ids in (prompt[:, :1], prompt, long):  # M = 1, 9 and 320 rows into every linear
        assert kernel_vs_dequantize_logits(model, ids, None) < 1e-4, ids.shape
        assert kernel_vs_dequantize_logits(half, ids, None) < 1e-2, ids.shape
