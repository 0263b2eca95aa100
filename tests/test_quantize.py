"""Properties of the quantization primitives and error metrics, on fresh random weights."""
import math

import pytest
import torch

from course_lib import metrics
from course_lib.quantize import (
    absmax_quantize, dequantize, fake_quantize, int_range, quantize, quantize_reference, zero_point_quantize,
)

BITS = range(2, 9)
GRANULARITIES = ["tensor", "channel", 8, 16]
TRIALS = 4


def random_weight(seed: int, out_features: int = 6, in_features: int = 32) -> torch.Tensor:
    """A weight with a random spread, a random skew and the occasional outlier."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out_features, in_features, generator=g) * 10 ** (torch.rand(1, generator=g) * 4 - 3)
    W = W + torch.rand(1, generator=g) * W.abs().mean() * 2  # skew: not centred on 0
    outliers = torch.rand(W.shape, generator=g) < 0.02
    return torch.where(outliers, W * 20, W)


def per_element_scale(qt) -> torch.Tensor:
    """Each element's step: scale [rows, n_groups] broadcast to the weight's shape."""
    rows, n_groups = qt.scale.shape
    return qt.scale[..., None].expand(rows, n_groups, qt.q.numel() // (rows * n_groups)).reshape(qt.q.shape)


def configs():
    for n_bits in BITS:
        for symmetric in (True, False):
            for group_size in GRANULARITIES:
                yield n_bits, group_size, symmetric


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.float16])
def test_error_at_most_half_a_step(scale_dtype):
    for trial, (n_bits, group_size, symmetric) in enumerate(configs()):
        W = random_weight(trial)
        qt = quantize(W, n_bits, group_size, symmetric, scale_dtype=scale_dtype)
        step = per_element_scale(qt)
        error = (W - qt.dequantize()).abs()
        bound = 0.5 * step * (1 + 1e-5) + 1e-6 * W.abs()  # float32 rounding of q * scale
        assert (error <= bound).all(), (n_bits, group_size, symmetric, float((error / step).max()))
        if scale_dtype == torch.float16:
            assert torch.equal(qt.scale.half().float(), qt.scale)  # what is stored is what was used


def test_integers_inside_their_range_for_every_bit_width():
    for trial, (n_bits, group_size, symmetric) in enumerate(configs()):
        qt = quantize(random_weight(100 + trial), n_bits, group_size, symmetric)
        qmin, qmax = int_range(n_bits, symmetric)
        assert qt.q.dtype == (torch.int8 if symmetric else torch.uint8)
        assert int(qt.q.min()) >= qmin and int(qt.q.max()) <= qmax
        if symmetric:
            assert qt.zero_point is None and qmin == -qmax  # restricted range: -2**(b-1) unused
            assert int(qt.q.abs().max()) == qmax  # the largest weight lands on the top code
        else:
            assert qt.zero_point.dtype == torch.uint8 and int(qt.zero_point.max()) <= qmax
            assert qt.zero_point.shape == qt.scale.shape


def test_zero_is_exactly_representable():
    for trial in range(TRIALS):
        for n_bits in BITS:
            for symmetric in (True, False):
                W = random_weight(200 + trial)
                g = torch.Generator().manual_seed(trial)
                W[torch.rand(W.shape, generator=g) < 0.2] = 0.0
                qt = quantize(W, n_bits, 8, symmetric)
                assert (qt.dequantize()[W == 0] == 0).all()
                if not symmetric:  # the zero point is an integer code that decodes to exactly 0.0
                    assert (dequantize(qt.zero_point, qt.scale, qt.zero_point) == 0).all()


def test_all_zero_and_constant_groups_are_exact():
    g = torch.Generator().manual_seed(7)
    for n_bits in BITS:
        for symmetric in (True, False):
            W = torch.randn(8, 32, generator=g)
            W[0, :8] = 0.0  # all-zero group
            W[1:5, 8:16] = torch.randn(4, 1, generator=g).abs()  # constant positive groups
            W[5:8, 8:16] = -torch.rand(3, 1, generator=g)  # constant negative groups
            for group_size in (8, "channel", "tensor"):
                for X in (W, torch.zeros_like(W), torch.full_like(W, 0.3)):
                    qt = quantize(X, n_bits, group_size, symmetric)
                    assert torch.isfinite(qt.scale).all() and (qt.scale > 0).all()
                    if X is not W:
                        assert torch.equal(qt.dequantize(), X)
                qt = quantize(W, n_bits, 8, symmetric)
                W_hat = qt.dequantize()
                assert torch.equal(W_hat[0, :8], W[0, :8]) and torch.equal(W_hat[1:, 8:16], W[1:, 8:16])


def test_vectorised_quantize_matches_slow_reference():
    for trial, (n_bits, group_size, symmetric) in enumerate(configs()):
        W = random_weight(300 + trial, 3, 16)
        fast, slow = quantize(W, n_bits, group_size, symmetric), quantize_reference(W, n_bits, group_size, symmetric)
        assert torch.equal(fast.q, slow.q) and torch.equal(fast.scale, slow.scale)
        assert (fast.zero_point is None) == symmetric
        if not symmetric:
            assert torch.equal(fast.zero_point, slow.zero_point)


def test_building_blocks_agree_with_quantize():
    W = random_weight(400)
    q, scale = absmax_quantize(W, 8, dim=1)
    assert scale.shape == (6, 1) and torch.equal(q, quantize(W, 8, "channel", True).q)
    q, scale, zero_point = zero_point_quantize(W, 4)  # dim=None: the whole tensor
    assert scale.shape == zero_point.shape == (1, 1)
    assert torch.equal(q, quantize(W, 4, "tensor", False).q)
    assert torch.equal(fake_quantize(W, 4, 8, False), quantize(W, 4, 8, False).dequantize())
    assert absmax_quantize(torch.randn(2, 3, 4), 8)[1].shape == (1, 1, 1)  # any shape per tensor


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [8, 32, "channel", "tensor"])
@pytest.mark.parametrize("n_bits", [3, 4, 8])
def test_fused_fake_quantize_equals_quantize_then_dequantize_bit_for_bit(n_bits, group_size, symmetric):
    g = torch.Generator().manual_seed(n_bits)
    W = torch.randn(24, 64, generator=g) * torch.rand(24, 1, generator=g) * 3
    W[0, :32] = 0.25  # a constant group and an all-zero group
    W[1, :32] = 0.0
    for scale_dtype in (torch.float32, torch.float16):
        slow = quantize(W, n_bits, group_size, symmetric, scale_dtype=scale_dtype).dequantize()
        assert torch.equal(fake_quantize(W, n_bits, group_size, symmetric, scale_dtype=scale_dtype), slow)


def test_check_finite_finds_nan_inf_and_passes_huge_finite_values():
    with pytest.raises(ValueError, match="2 NaN or Inf"):
        quantize(torch.tensor([[1.0, float("nan"), float("-inf"), 2.0]]), 8, "tensor")
    huge = torch.full((2, 4), 3e38)  # finite, but their sum overflows to inf
    assert torch.isfinite(fake_quantize(huge, 8, "tensor")).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(W=torch.tensor([[1.0, float("nan")]])), "NaN or Inf"),
        (dict(W=torch.tensor([[1.0, float("inf")]])), "NaN or Inf"),
        (dict(W=torch.randn(4, 576), group_size=128), r"does not divide in_features=576.*64, 96, 192, 288"),
        (dict(n_bits=1), "from 2 to 8"),
        (dict(n_bits=9), "from 2 to 8"),
        (dict(n_bits=4.0), "from 2 to 8"),
        (dict(W=torch.randn(2, 3, 4)), "2-D weight"),
        (dict(W=torch.randn(8)), "2-D weight"),
        (dict(group_size="row"), "'tensor', 'channel'"),
        (dict(group_size=0), "positive int"),
    ],
)
def test_bad_inputs_raise_a_clear_error(kwargs, message):
    args = dict(W=torch.randn(4, 8), n_bits=8, group_size="channel", symmetric=True) | kwargs
    with pytest.raises(ValueError, match=message):
        quantize(**args)


def test_metrics_on_known_values():
    W, W_hat = torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.0])
    assert metrics.mse(W, W_hat) == pytest.approx(0.5)
    assert metrics.relative_error(W, W_hat) == pytest.approx(0.2)
    assert metrics.sqnr_db(W, W_hat) == pytest.approx(10 * math.log10(25))
    assert metrics.sqnr_db(W, W) == math.inf and metrics.relative_error(W, W) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.mse(W, W[:1])


def test_one_more_bit_buys_about_six_db():
    W = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    sqnr = [metrics.sqnr_db(W, fake_quantize(W, b, "channel")) for b in (6, 7, 8)]
    assert all(5.0 < hi - lo < 7.0 for lo, hi in zip(sqnr, sqnr[1:]))
