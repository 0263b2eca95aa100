"""Packing n-bit integer codes into bytes, and unpacking them again.

PyTorch has no 4-bit or 3-bit dtype, so quantized weights are stored as a stream of bits
in ``uint8`` bytes, packed along the last dimension (each row on its own):

    value i of a row occupies bits [i*n_bits, (i+1)*n_bits) of the row's bit stream,
    least significant bit first; bit k of the stream is bit (k % 8) of byte k // 8.

    bytes per row = packed_nbytes(length, n_bits) = ceil(length * n_bits / 8)

so 4-bit codes go two per byte (low nibble = even index, high nibble = odd index), 2-bit
codes four per byte, and 3-bit codes eight per three bytes (a code may straddle two bytes).
A partial last byte is padded with zero bits.

Codes are unsigned, in [0, 2**n_bits - 1]. Signed codes (symmetric quantization, in
[-2**(n_bits-1), 2**(n_bits-1) - 1]) pass ``signed=True``: they are offset by +2**(n_bits-1)
before packing and by -2**(n_bits-1) after unpacking (so -7..7 at 4 bits is stored as 1..15).

Fast paths: nibbles for 4 bits; for any other width, chunks of 8 codes = n_bits bytes
combined into one int32 (up to 3 bits) or int64 word. ``pack_bits_reference`` and
``unpack_bits_reference`` walk the bit stream one bit at a time in pure Python; the tests
compare the two.
"""
from __future__ import annotations

import math

import torch


def packed_nbytes(numel: int, n_bits: int) -> int:
    """Bytes that ``numel`` codes of ``n_bits`` take when packed: ``ceil(numel * n_bits / 8)``."""
    return math.ceil(numel * n_bits / 8)


def _check_bits(n_bits) -> None:
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits must be an integer from 1 to 8 for packing, got {n_bits!r}.")


def _to_codes(q: torch.Tensor, n_bits: int, signed: bool) -> torch.Tensor:
    """Check ``q`` holds integers in range for ``n_bits``; return them as int64 in [0, 2**n_bits - 1]."""
    _check_bits(n_bits)
    if q.dtype.is_floating_point or q.dtype.is_complex or q.dtype == torch.bool:
        raise ValueError(
            f"Only integer codes can be packed, got dtype {q.dtype}. Quantize first, or cast with .to(torch.int64)."
        )
    if q.dim() == 0:
        raise ValueError("Packing works along the last dimension; got a 0-d tensor. Reshape it to 1-D first.")
    offset = 2 ** (n_bits - 1) if signed else 0
    lo, hi = -offset, 2**n_bits - 1 - offset
    if q.numel() and (int(q.min()) < lo or int(q.max()) > hi):
        hint = "" if signed else " For signed (symmetric) codes pass signed=True."
        raise ValueError(
            f"{n_bits}-bit {'signed' if signed else 'unsigned'} codes must lie in [{lo}, {hi}], "
            f"got values from {int(q.min())} to {int(q.max())}.{hint}"
        )
    return q.to(torch.int64) + offset


def _word_dtype(n_bits: int) -> torch.dtype:
    """A chunk of 8 codes is 8 * n_bits bits: int32 holds it up to 3 bits (24 bits), int64 beyond."""
    return torch.int32 if n_bits <= 3 else torch.int64


def _from_codes(codes: torch.Tensor, n_bits: int, signed: bool) -> torch.Tensor:
    if signed:
        return (codes.to(torch.int16) - 2 ** (n_bits - 1)).to(torch.int8)
    return codes.to(torch.uint8)


# ---------------------------------------------------------------- 4 bits, two per byte

def pack_int4(q: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Two 4-bit codes per byte along the last dim: [..., L] -> [..., L // 2] uint8.

    byte j = q[..., 2j] | (q[..., 2j+1] << 4)   (low nibble = even index). L must be even.
    """
    codes = _to_codes(q, 4, signed)
    if codes.shape[-1] % 2:
        raise ValueError(
            f"pack_int4 needs an even last dimension, got {codes.shape[-1]}. Pad it, or use pack_bits(q, 4)."
        )
    low, high = codes[..., 0::2], codes[..., 1::2]  # [..., L // 2] each
    return (low | (high << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: [..., n] uint8 -> [..., 2n] (uint8, or int8 when signed)."""
    if packed.dtype != torch.uint8:
        raise ValueError(f"Packed codes are uint8, got {packed.dtype}.")
    low, high = packed & 0x0F, packed >> 4  # [..., n] each
    codes = torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], -1)  # [..., n, 2] -> [..., 2n]
    return _from_codes(codes, 4, signed)


# ---------------------------------------------------------------- any width 1..8

def pack_bits(q: torch.Tensor, n_bits: int, signed: bool = False) -> torch.Tensor:
    """Pack ``n_bits``-bit codes along the last dim: [..., L] -> [..., ceil(L * n_bits / 8)] uint8."""
    codes = _to_codes(q, n_bits, signed)
    *lead, length = codes.shape
    if n_bits == 8:
        return codes.to(torch.uint8)
    if n_bits == 4:
        codes = torch.cat([codes, codes.new_zeros(*lead, length % 2)], dim=-1)  # [..., L rounded up to even]
        return pack_int4(codes)
    word, device = _word_dtype(n_bits), q.device
    codes = torch.cat([codes, codes.new_zeros(*lead, (-length) % 8)], dim=-1).to(word)  # [..., L8], L rounded up to 8
    chunks = codes.reshape(*lead, -1, 8)  # [..., L8 / 8, 8]: 8 codes = n_bits bytes
    shifts = torch.arange(8, dtype=word, device=device) * n_bits  # code j of a chunk starts at bit j * n_bits
    words = (chunks << shifts).sum(-1, dtype=word)  # [..., L8 / 8], bits don't overlap
    nbytes = (words[..., None] >> (torch.arange(n_bits, dtype=word, device=device) * 8)) & 0xFF  # [..., L8 / 8, n_bits]
    packed = nbytes.reshape(*lead, -1)  # [..., L8 * n_bits / 8]
    return packed[..., : packed_nbytes(length, n_bits)].to(torch.uint8)  # trailing bytes hold only padding


def unpack_bits(packed: torch.Tensor, n_bits: int, length: int, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: [..., ceil(length * n_bits / 8)] uint8 -> [..., length]."""
    _check_bits(n_bits)
    if packed.dtype != torch.uint8:
        raise ValueError(f"Packed codes are uint8, got {packed.dtype}.")
    *lead, nbytes = packed.shape
    if nbytes != packed_nbytes(length, n_bits):
        raise ValueError(
            f"{length} codes of {n_bits} bits take {packed_nbytes(length, n_bits)} bytes, "
            f"but the last dim has {nbytes}. "
            "Pass the length the codes had before packing."
        )
    if n_bits == 8:
        codes = packed
    elif n_bits == 4:
        codes = unpack_int4(packed)[..., :length]  # [..., length]
    else:
        word, device = _word_dtype(n_bits), packed.device
        data = torch.cat([packed.to(word), packed.new_zeros(*lead, (-nbytes) % n_bits, dtype=word)], dim=-1)
        groups = data.reshape(*lead, -1, n_bits)  # [..., n_chunks, n_bits]: n_bits bytes = 8 codes
        words = (groups << (torch.arange(n_bits, dtype=word, device=device) * 8)).sum(-1, dtype=word)  # [..., n_chunks]
        shifts = torch.arange(8, dtype=word, device=device) * n_bits
        codes = (words[..., None] >> shifts) & (2**n_bits - 1)  # [..., n_chunks, 8]
        codes = codes.reshape(*lead, -1)[..., :length]  # [..., length]
    return _from_codes(codes, n_bits, signed)


# ---------------------------------------------------------------- slow references

def pack_bits_reference(q: torch.Tensor, n_bits: int, signed: bool = False) -> torch.Tensor:
    """Slow reference for :func:`pack_bits`: sets the stream's bits one at a time in Python."""
    codes = _to_codes(q, n_bits, signed)
    *lead, length = codes.shape
    nbytes = packed_nbytes(length, n_bits)
    rows = []
    for row in codes.reshape(-1, length).tolist():
        buf = [0] * nbytes
        for i, value in enumerate(row):
            for k in range(n_bits):
                pos = i * n_bits + k
                buf[pos // 8] |= ((value >> k) & 1) << (pos % 8)
        rows.append(buf)
    return torch.tensor(rows, dtype=torch.uint8).reshape(*lead, nbytes)


def unpack_bits_reference(packed: torch.Tensor, n_bits: int, length: int, signed: bool = False) -> torch.Tensor:
    """Slow reference for :func:`unpack_bits`: reads the stream's bits one at a time in Python."""
    _check_bits(n_bits)
    *lead, nbytes = packed.shape
    rows = []
    for buf in packed.reshape(-1, nbytes).tolist():
        row = []
        for i in range(length):
            value = 0
            for k in range(n_bits):
                pos = i * n_bits + k
                value |= ((buf[pos // 8] >> (pos % 8)) & 1) << k
            row.append(value)
        rows.append(row)
    return _from_codes(torch.tensor(rows, dtype=torch.int64).reshape(*lead, length), n_bits, signed)
