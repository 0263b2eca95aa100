"""Packing n-bit codes into bytes: identity, byte counts, layout, and the slow references."""
import math

import pytest
import torch

from course_lib.packing import (
    pack_bits, pack_bits_reference, pack_int4, packed_nbytes, unpack_bits, unpack_bits_reference, unpack_int4,
)

TRIALS = 5


def random_codes(seed: int, n_bits: int, signed: bool = False):
    g = torch.Generator().manual_seed(seed)
    rows, length = (int(x) for x in torch.randint(1, 12, (2,), generator=g))
    lo = -(2 ** (n_bits - 1)) if signed else 0
    q = torch.randint(lo, lo + 2**n_bits, (2, rows, length), generator=g)
    return q.to(torch.int8 if signed else torch.uint8)


@pytest.mark.parametrize("n_bits", [2, 3, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_pack_then_unpack_is_the_identity(n_bits, signed):
    for trial in range(TRIALS):
        q = random_codes(trial, n_bits, signed)
        packed = pack_bits(q, n_bits, signed=signed)
        assert packed.dtype == torch.uint8
        assert torch.equal(unpack_bits(packed, n_bits, q.shape[-1], signed=signed), q)


@pytest.mark.parametrize("n_bits", range(1, 9))
def test_fast_paths_match_the_bit_by_bit_reference(n_bits):
    for trial in range(TRIALS):
        q = random_codes(10 + trial, n_bits)
        packed = pack_bits(q, n_bits)
        assert torch.equal(packed, pack_bits_reference(q, n_bits))
        assert torch.equal(unpack_bits(packed, n_bits, q.shape[-1]), unpack_bits_reference(packed, n_bits, q.shape[-1]))


@pytest.mark.parametrize("n_bits", [2, 3, 4, 8])
def test_packed_byte_count(n_bits):
    for length in (1, 7, 8, 13, 64, 576, 1536):
        q = torch.zeros(3, length, dtype=torch.uint8)
        assert pack_bits(q, n_bits).shape == (3, math.ceil(length * n_bits / 8)) == (3, packed_nbytes(length, n_bits))
    assert packed_nbytes(8, 3) == 3 and packed_nbytes(576, 4) == 288 and packed_nbytes(576, 3) == 216
    assert packed_nbytes(576, 2) == 144 and packed_nbytes(1536, 3) == 576


def test_int4_layout_low_nibble_is_the_even_index():
    q = torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8)
    assert pack_int4(q).tolist() == [[0x21, 0x0F]]
    assert torch.equal(unpack_int4(pack_int4(q)), q)
    signed = torch.tensor([-7, 7, -8, 0], dtype=torch.int8)
    assert pack_int4(signed, signed=True).tolist() == [(15 << 4) | 1, (8 << 4) | 0]  # offset by +8
    assert torch.equal(unpack_int4(pack_int4(signed, signed=True), signed=True), signed)
    for trial in range(TRIALS):
        q = random_codes(20 + trial, 4)
        q = q[..., : q.shape[-1] // 2 * 2]
        if q.shape[-1]:
            assert torch.equal(pack_int4(q), pack_bits(q, 4))


def test_three_bit_codes_straddle_bytes():
    q = torch.tensor([7, 0, 0, 0, 0, 0, 0, 7], dtype=torch.uint8)  # bits 0-2 and 21-23 set
    assert pack_bits(q, 3).tolist() == [0b111, 0, 0b11100000]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pack_int4(torch.zeros(3, dtype=torch.uint8)), "even last dimension"),
        (lambda: pack_bits(torch.tensor([16]), 4), r"\[0, 15\].*signed=True"),
        (lambda: pack_bits(torch.tensor([-9]), 4, signed=True), r"\[-8, 7\]"),
        (lambda: pack_bits(torch.tensor([0.5]), 4), "integer codes"),
        (lambda: pack_bits(torch.tensor([1]), 9), "from 1 to 8"),
        (lambda: unpack_bits(torch.zeros(3, dtype=torch.uint8), 4, 8), "take 4 bytes"),
    ],
)
def test_bad_packing_inputs_raise_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
