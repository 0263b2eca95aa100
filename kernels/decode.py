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

The helpers take index tensors that broadcast against each other (n [BLOCK_N, 1] with
k [1, BLOCK_K] gives a [BLOCK_N, BLOCK_K] tile, or its transpose for a ``tl.dot``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def load_nibble_codes(qweight_ptr, n, k, stride_qn, mask):
    """4-bit codes q[n, k] (int32 in 0..15), one load per code: byte k // 2, nibble k % 2 (0 where masked).
    stride_qn: bytes between two rows of qweight."""
    byte = tl.load(qweight_ptr + n * stride_qn + (k >> 1), mask=mask, other=0).to(tl.int32)
    return (byte >> ((k & 1) * 4)) & 0xF


@triton.jit
def split_nibbles(byte):
    """One loaded byte tile -> (codes of the even columns, codes of the odd columns), int32."""
    byte = byte.to(tl.int32)
    return byte & 0xF, byte >> 4


@triton.jit
def load_zero_point(zero_ptr, n, g, zero_row_stride, mask, N_BITS: tl.constexpr, SYMMETRIC: tl.constexpr):
    """Integer zero point of (row n, group g) as int32 from the packed stream of N_BITS codes (4 or 8);
    2**(N_BITS-1), the storage offset, when SYMMETRIC. zero_row_stride: n_groups, or 0 for "tensor"."""
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
    """scale[n, g] as float32 (0 where masked, so masked codes decode to 0, never NaN); stride_sn = 0 for
    "tensor" (one row)."""
    return tl.load(scale_ptr + n * stride_sn + g * stride_sg, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def round_half_even(v):
    """``torch.round`` in float32: nearest integer, ties to even (exact for |v| < 2**22)."""
    r = tl.floor(v + 0.5)
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where(((r - v) == 0.5) & odd, r - 1.0, r)


@triton.jit
def group_of_columns(g_idx_ptr, k, K, group_len, FROM_G_IDX: tl.constexpr):
    """The group of every column index in k: g_idx[k] (act-order) or k // group_len (consecutive groups).

    Columns past K get a valid group too: their x is 0, but 0 * (a scale read past the end, maybe NaN) is NaN.
    """
    if FROM_G_IDX:
        return tl.load(g_idx_ptr + k, mask=k < K, other=0)
    return tl.minimum(k, K - 1) // group_len


# ---------------------------------------------------------------- whole int32 words, no int -> float conversion
#
# An int -> float conversion issues at a fraction of the float rate on an H100. W4A16 v5 and W8A16 v4 move a
# code into the top of the mantissa of a float whose exponent is fixed: an exact float, affine in the code.
#   float32 bits 0x3F800000 | (c << 19), c < 16:   1 + c / 16
#   float32 bits 0x3F800000 | (c << 15), c < 256:  1 + c / 256


def as_int32_words(qweight):
    """qweight [N, K_bytes] (uint8 or int8) viewed as int32 words [N, K_bytes / 4], no copy; or None when a
    row is not a whole number of aligned words (the kernels then read bytes and assemble the words)."""
    if qweight.shape[1] % 4 or qweight.stride(1) != 1 or qweight.stride(0) % 4 or qweight.data_ptr() % 4:
        return None
    return qweight.view(torch.int32)


@triton.jit
def load_words(q_ptr, n, w, stride_qn, N, K_words, K_bytes, WORDS: tl.constexpr):
    """int32 word w of row n: bytes 4w .. 4w+3 of the row, little-endian, 0 past the row (K_words, K_bytes).

    q_ptr: WORDS, qweight viewed as int32 [N, K_words] (one load a word); else its bytes [N, K_bytes] (4 loads).
    stride_qn: elements of q_ptr between two rows.
    """
    if WORDS:
        word = tl.load(q_ptr + n * stride_qn + w, mask=(n < N) & (w < K_words), other=0)
    else:
        word = tl.zeros_like(n + w)  # [.., ..] int32
        for b in tl.static_range(4):
            byte = tl.load(q_ptr + n * stride_qn + 4 * w + b, mask=(n < N) & (4 * w + b < K_bytes), other=0)
            word = word | (byte.to(tl.uint8, bitcast=True).to(tl.int32) << (8 * b))  # int8 codes: no sign extension
    return word


@triton.jit
def split_last_8(x, D0: tl.constexpr, D1: tl.constexpr):
    """x [D0, D1, 8] -> the 8 tensors x[:, :, i], i = 0..7, each [D0, D1] (three rounds of tl.split)."""
    even, odd = tl.split(tl.reshape(x, (D0, D1, 4, 2)))  # i = 0, 2, 4, 6 / 1, 3, 5, 7
    e04, e26 = tl.split(tl.reshape(even, (D0, D1, 2, 2)))  # i = 0, 4 / 2, 6
    o15, o37 = tl.split(tl.reshape(odd, (D0, D1, 2, 2)))  # i = 1, 5 / 3, 7
    x0, x4 = tl.split(e04)
    x2, x6 = tl.split(e26)
    x1, x5 = tl.split(o15)
    x3, x7 = tl.split(o37)
    return x0, x1, x2, x3, x4, x5, x6, x7


@triton.jit
def nibble_as_mantissa(word, i: tl.constexpr):
    """1 + c / 16 as float32 (exact), c = the 4-bit code in nibble i (bits 4i .. 4i+3) of each int32 word."""
    if 19 - 4 * i >= 0:  # move bits 4i .. 4i+3 to 19 .. 22, the top of the mantissa
        bits = word << (19 - 4 * i)
    else:
        bits = word >> (4 * i - 19)
    return ((bits & 0x00780000) | 0x3F800000).to(tl.float32, bitcast=True)


@triton.jit
def byte_as_mantissa(word, i: tl.constexpr, FLIP: tl.constexpr):
    """1 + u / 256 as float32 (exact), u = byte i of each int32 word XOR FLIP.

    FLIP = 0x80 turns a signed int8 code q into u = q + 128 (two's complement); 0 keeps a uint8 code.
    """
    if 15 - 8 * i >= 0:  # move bits 8i .. 8i+7 to 15 .. 22
        bits = word << (15 - 8 * i)
    else:
        bits = word >> (8 * i - 15)
    return (((bits & 0x007F8000) ^ (FLIP << 15)) | 0x3F800000).to(tl.float32, bitcast=True)


# ---------------------------------------------------------------- two codes per instruction (fp16x2)
#
# The float16 cousin: float16 bits 0x6400 | c are 1024 + c exactly (c < 1024). Codes 2j and 2j+1 (the two
# nibbles of byte j of a word) in the low bits of the two halves of a register, OR 0x64006400, are two float16
# 1024 + c: one instruction decodes two codes, and one HFMA2 multiplies them by a neighbouring pair of X.
# W4A16 v6 takes (c - z) / 16 (exact), keeping the float16 sums 16x further from overflow.


@triton.jit
def magic_pair_bits(word, j: tl.constexpr):
    """int32 {low half: 0x6400 | code 2j, high half: 0x6400 | code 2j+1} of each word: prmt + lop3, in integer ops."""
    lo = (word >> (8 * j)) & 0xF  # low nibble of byte j: code 2j
    hi = (word >> (8 * j + 4)) & 0xF  # high nibble of byte j: code 2j+1
    return lo | (hi << 16) | 0x64006400


@triton.jit
def half_bits_as_float(bits):
    """The float16 whose bits are the low 16 bits of each int32 (0 .. 0x7FFF), as float32."""
    return (bits & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def zero_point_half2_bits(zero_point):
    """int32 holding -(64 + z / 16) = -(1024 + z) / 16 as float16 in both halves, z = the integer zero point 0..15:
    float16 0xD400 is -64 and its last mantissa bit is worth 1/16, so the bits are 0xD400 | z (an IMAD and a LOP3)."""
    return (zero_point * 0x00010001) | -0x2BFF2C00  # -0x2BFF2C00 = 0xD400D400 as int32


def _word_dot_fp16x2_asm() -> str:
    """PTX for 4 words at once (pack=4): outputs $0..$3, then words $4..$7, x pairs $8..$23, zz $24..$27."""
    lines = ["{", ".reg .b32 t4, p, v, a, k16;", ".reg .b16 lo, hi, s;", "mov.b32 k16, 0x2C002C00;"]  # k16: 1/16, 1/16
    for r in range(4):
        word, zz = f"${4 + r}", f"${24 + r}"
        lines.append(f"shr.u32 t4, {word}, 4;")
        for j in range(4):
            x = f"${8 + 4 * r + j}"  # slot j of word r: element j of the x operand of word r (w4a16_v6_gemv_kernel)
            lines += [f"prmt.b32 p, {word}, t4, 0x{0x4400 + 0x1111 * j:04X};",  # byte j -> bytes 0 and 2 (>> 4)
                      "lop3.b32 p, p, 0x000F000F, 0x64006400, 0xEA;",  # (p & 0x000F000F) | 0x64006400
                      f"fma.rn.f16x2 v, p, k16, {zz};",  # (c - z) / 16, exact
                      f"mul.rn.f16x2 a, v, {x};" if j == 0 else f"fma.rn.f16x2 a, v, {x}, a;"]
        lines += ["mov.b32 {lo, hi}, a;", "add.rn.f16 s, lo, hi;", f"cvt.f32.f16 ${r}, s;"]
    return "\n".join(lines + ["}"])


WORD_DOT_FP16X2_ASM = tl.constexpr(_word_dot_fp16x2_asm())
WORD_DOT_FP16X2_CONSTRAINTS = tl.constexpr(",".join(["=f"] * 4 + ["r"] * 24))  # 4 float32 out, 6 x 4 int32 in


@triton.jit
def word_dot_fp16x2(word, x_0, x_1, x_2, x_3, zz):
    """sum_k (c_k - z) / 16 * x_k over the 8 codes of each int32 word, float32 out, in inline PTX (GPU only).

    word: int32 words laid out with 4 consecutive words in each thread's consecutive registers (pack=4).
    x_0 .. x_3: X viewed as int32 float16 pairs; among 4 neighbouring elements (words w .. w+3), element j of
    x_r is pair j = {x[8(w+r) + 2j], x[8(w+r) + 2j + 1]} of word w+r, so each x_r is one 16-byte load.
    zz: -(64 + z / 16) as float16 in both halves (zero_point_half2_bits).
    """
    return tl.inline_asm_elementwise(
        asm=WORD_DOT_FP16X2_ASM, constraints=WORD_DOT_FP16X2_CONSTRAINTS,
        args=[word, x_0, x_1, x_2, x_3, zz], dtype=tl.float32, is_pure=True, pack=4,
    )


@triton.jit
def word_dot_arithmetic(word, x_row_ptr, w, K, stride_xk, zh):
    """word_dot_fp16x2's arithmetic twin (the interpreter, and X not float16): the same pairs, the same magic
    numbers, in float32. zh: -(64 + z / 16) as float32; x_row_ptr: X's row; w: the word index of each word."""
    s = tl.zeros(word.shape, tl.float32)
    for j in tl.static_range(4):
        p = magic_pair_bits(word, j)
        k = 8 * w + 2 * j  # the columns of the pair: k, k + 1
        x_lo = tl.load(x_row_ptr + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
        x_hi = tl.load(x_row_ptr + (k + 1) * stride_xk, mask=k + 1 < K, other=0.0).to(tl.float32)
        s += (half_bits_as_float(p) * 0.0625 + zh) * x_lo + (half_bits_as_float(p >> 16) * 0.0625 + zh) * x_hi
    return s
