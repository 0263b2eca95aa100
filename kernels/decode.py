"""Reading ``QuantLinear``'s stored format inside a Triton kernel.

``QuantLinear`` (course_lib/quant_linear.py) stores, for a weight W [N, K] (N = out, K = in):

    qweight     4 bits: ``pack_bits`` of each row, [N, ceil(K / 2)] uint8;
                code k of row n is nibble (k % 2) of byte k // 2: low nibble = even k.
                8 bits: the codes themselves, [N, K], int8 (symmetric) or uint8.
    scale       [rows, n_groups] float16, rows = N (or 1 for "tensor")
    zero_point  asymmetric: the [rows, n_groups] codes flattened row-major and packed with
                ``pack_bits``; entry (r, g) is code r * n_groups + g of that stream.
                symmetric: None. The codes were stored offset by +2**(n_bits - 1), so the
                zero point of every group is that constant (8 at 4 bits).
    g_idx       [K] int32, the group of every input column (GPTQ act-order permutes it)

and W_hat[n, k] = (q[n, k] - zero_point[n, g]) * scale[n, g] with g = g_idx[k].

The helpers below take *index tensors* that broadcast against each other (a row index n
of shape [BLOCK_N, 1] with a column index k of shape [1, BLOCK_K] gives a [BLOCK_N,
BLOCK_K] tile; the same helpers serve the transposed [BLOCK_K, BLOCK_N] tiles of a
``tl.dot``), so every kernel decodes the format the same way.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def load_nibble_codes(qweight_ptr, n, k, stride_qn, mask):
    """4-bit codes q[n, k] (int32 in 0..15), one load per code: byte k // 2, nibble k % 2.

    qweight_ptr  # uint8 [N, ceil(K / 2)], rows packed with pack_bits
    n, k         # broadcastable int index tensors: output row, input column
    stride_qn    # bytes between two rows of qweight
    mask         # where (n, k) is inside [N, K]; other codes read as 0
    """
    byte = tl.load(qweight_ptr + n * stride_qn + (k >> 1), mask=mask, other=0).to(tl.int32)
    return (byte >> ((k & 1) * 4)) & 0xF


@triton.jit
def split_nibbles(byte):
    """One loaded byte tile -> (codes of the even columns, codes of the odd columns), int32."""
    byte = byte.to(tl.int32)
    return byte & 0xF, byte >> 4


@triton.jit
def load_zero_point(zero_ptr, n, g, zero_row_stride, mask, N_BITS: tl.constexpr, SYMMETRIC: tl.constexpr):
    """Integer zero point of (row n, group g) as int32; 2**(N_BITS-1) when symmetric.

    zero_ptr         # uint8, the packed [rows * n_groups] stream (unused when symmetric)
    n, g             # broadcastable int index tensors: output row, group
    zero_row_stride  # n_groups when there is one row of groups per output row, 0 for "tensor"
    mask             # where (n, g) is valid
    N_BITS           # 4 or 8: width of each packed zero-point code
    SYMMETRIC        # constexpr: no zero_point tensor, the +2**(N_BITS-1) storage offset instead
    """
    idx = n * zero_row_stride + g  # position in the flattened [rows * n_groups] stream
    if SYMMETRIC:
        zero_point = tl.zeros_like(idx) + 2 ** (N_BITS - 1)  # folded away by the compiler
    elif N_BITS == 8:
        zero_point = tl.load(zero_ptr + idx, mask=mask, other=0).to(tl.int32)
    else:
        byte = tl.load(zero_ptr + (idx >> 1), mask=mask, other=0).to(tl.int32)
        zero_point = (byte >> ((idx & 1) * 4)) & 0xF
    return zero_point


@triton.jit
def load_scale(scale_ptr, n, g, stride_sn, stride_sg, mask):
    """scale[n, g] as float32 (0 where masked, so masked codes decode to 0, never NaN).

    scale_ptr             # float16 [rows, n_groups]
    stride_sn, stride_sg  # element strides of scale; stride_sn = 0 for "tensor" (one row)
    """
    return tl.load(scale_ptr + n * stride_sn + g * stride_sg, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def round_half_even(v):
    """``torch.round`` in float32: nearest integer, ties to even (exact for |v| < 2**22)."""
    r = tl.floor(v + 0.5)
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where(((r - v) == 0.5) & odd, r - 1.0, r)


@triton.jit
def group_of_columns(g_idx_ptr, k, K, group_len, FROM_G_IDX: tl.constexpr):
    """The group of every column index in k: g_idx[k] (act-order) or k // group_len (consecutive groups)."""
    if FROM_G_IDX:
        return tl.load(g_idx_ptr + k, mask=k < K, other=0)
    return k // group_len
