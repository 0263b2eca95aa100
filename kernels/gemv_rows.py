"""GEMV with rows per thread, for W4A16 and W8A16 at M = 1 -- an experiment, dispatched nowhere: measured on an H200
in benchmarks/results/h200-2026-12-02-gemv-rows.md (faster than W4A16 v6 on 8192^2 only) and then removed.

Why. At M = 1 every code of the weight meets one element of X, so a GEMV loads X as often as the weight.
v6 (W4A16) and v4 (W8A16) give each thread runs of 4 consecutive words of *one* output row: each thread loads
the X its words meet (64 bytes of X per 16 bytes of 4-bit codes), and the threads of other rows load the same X
again. On an H200 that made the L1 the busy unit (78%) while DRAM ran at 37% (benchmarks/results/h200-2026-12-01.md).

Here each thread owns the *same* words of ROWS output rows: it loads X once and uses it ROWS times, so X costs
1 / ROWS of what it cost. And each thread owns one word per chunk, not 4 neighbouring ones: a warp's load of the
words is 128 contiguous bytes (one row, 32 words), its load of X 512 contiguous bytes (the 4 pairs of each of its
32 words), both whole cache lines (v6's X loads spread each warp's 16-byte pieces over 2 KB).

    X      [M, K]     float16 (the PTX path; bfloat16 / float32 and the interpreter run the arithmetic twin)
    words  [N, K_w]   int32: 4-bit, word w of a row holds codes 8w .. 8w+7 (nibble i = code 8w + i);
                      8-bit, word w holds codes 4w .. 4w+3 (byte i = code 4w + i)
    Y      [M, N]     X's dtype

A K step is a [PER_THREAD, CHUNKS, CHUNK_WORDS / PER_THREAD] tile of words per row (a chunk lies inside one group
at 4 bits; each thread holds PER_THREAD words of a chunk, which share one scale and zero point load). Triton lays a
contiguous int32 tile out with 4 words per thread (16-byte loads); the word index is multiplied by a run-time 1
(``one``, never specialized) so the compiler cannot prove the words contiguous and gives neighbouring threads
neighbouring words, and X, loaded as [..., PAIRS] pairs, the same threads (no layout conversion: checked in the ttgir).

Decoding is v6's (decode.py): two codes per prmt + lop3 under the float16 exponent of 1024, an HFMA2 that takes
the zero point off exactly, an HFMA2 per pair of X, summed in float16 per word and added in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .decode import byte_as_mantissa, load_scale, load_zero_point, word_dot_arithmetic, zero_point_half2_bits
from .launch import Config


def _w4_word_asm() -> str:
    """PTX for one 4-bit word: output $0 (float32), word $1, X pairs $2..$5, zz $6: sum_i (c_i - z) / 16 * x_i."""
    lines = ["{", ".reg .b32 t4, p, v, a, k16;", ".reg .b16 lo, hi, s;", "mov.b32 k16, 0x2C002C00;", "shr.u32 t4, $1, 4;"]
    for j in range(4):
        lines += [f"prmt.b32 p, $1, t4, 0x{0x4400 + 0x1111 * j:04X};",  # byte j -> bytes 0 and 2 (>> 4)
                  "lop3.b32 p, p, 0x000F000F, 0x64006400, 0xEA;",  # {1024 + c_2j, 1024 + c_2j+1}
                  "fma.rn.f16x2 v, p, k16, $6;",  # (c - z) / 16, exact
                  f"mul.rn.f16x2 a, v, ${2 + j};" if j == 0 else f"fma.rn.f16x2 a, v, ${2 + j}, a;"]
    return "\n".join(lines + ["mov.b32 {lo, hi}, a;", "add.rn.f16 s, lo, hi;", "cvt.f32.f16 $0, s;", "}"])


def _w8_word_asm() -> str:
    """PTX for one 8-bit word: output $0, word $1 (unsigned codes u), X pairs $2, $3, zz $4: sum_i (u_i - z) / 128 x_i.

    prmt with 0x64646464 puts bytes 0, 1 (then 2, 3) of the word under the float16 exponent byte 0x64: the pair
    {1024 + u_0, 1024 + u_1}; one HFMA2 with 1/128 and -(8 + z / 128) gives (u - z) / 128 exactly."""
    lines = ["{", ".reg .b32 p, v, a, k128, e;", ".reg .b16 lo, hi, s;",
             "mov.b32 k128, 0x20002000;", "mov.b32 e, 0x64646464;"]  # 1/128 in both halves; the exponent bytes
    for j, sel in enumerate((0x4140, 0x4342)):
        lines += [f"prmt.b32 p, $1, e, 0x{sel:04X};",
                  "fma.rn.f16x2 v, p, k128, $4;",
                  f"mul.rn.f16x2 a, v, ${2 + j};" if j == 0 else f"fma.rn.f16x2 a, v, ${2 + j}, a;"]
    return "\n".join(lines + ["mov.b32 {lo, hi}, a;", "add.rn.f16 s, lo, hi;", "cvt.f32.f16 $0, s;", "}"])


W4_WORD_ASM = tl.constexpr(_w4_word_asm())


def _w4_word_lop3_asm() -> str:
    """PTX for one 4-bit word, lop3 decode without prmt: output $0, word $1, X pairs $2..$5 re-paired as {x0, x4},
    {x1, x5}, {x2, x6}, {x3, x7}, $6 = -(64 + z / 16) and $7 = -(4 + z / 16) as float16x2 bits.
    Mask 0x000F000F keeps codes 0 and 4 under the exponent of 1024 ({1024 + c0, 1024 + c4}); 0x00F000F0 keeps codes
    1 and 5 four bits up ({1024 + 16 c1, 1024 + 16 c5}, scaled by 1/256); the word shifted by 8 gives 2, 6 and 3, 7."""
    lines = ["{", ".reg .b32 t8, p, v, a, k16, k256;", ".reg .b16 lo, hi, s;",
             "mov.b32 k16, 0x2C002C00;", "mov.b32 k256, 0x1C001C00;", "shr.u32 t8, $1, 8;"]
    for j, (src, mask, k, zz) in enumerate([("$1", "0x000F000F", "k16", "$6"), ("$1", "0x00F000F0", "k256", "$7"),
                                            ("t8", "0x000F000F", "k16", "$6"), ("t8", "0x00F000F0", "k256", "$7")]):
        lines += [f"lop3.b32 p, {src}, {mask}, 0x64006400, 0xEA;",
                  f"fma.rn.f16x2 v, p, {k}, {zz};",
                  f"mul.rn.f16x2 a, v, ${2 + j};" if j == 0 else f"fma.rn.f16x2 a, v, ${2 + j}, a;"]
    return "\n".join(lines + ["mov.b32 {lo, hi}, a;", "add.rn.f16 s, lo, hi;", "cvt.f32.f16 $0, s;", "}"])


W4_WORD_LOP3_ASM = tl.constexpr(_w4_word_lop3_asm())
REPAIR_ASM = tl.constexpr("prmt.b32 $0, $4, $6, 0x5410;\nprmt.b32 $1, $4, $6, 0x7632;\n"
                          "prmt.b32 $2, $5, $7, 0x5410;\nprmt.b32 $3, $5, $7, 0x7632;")


@triton.jit
def _repair_x(x0, x1, x2, x3):
    """X pairs {x0, x1}, {x2, x3}, {x4, x5}, {x6, x7} of each word -> {x0, x4}, {x1, x5}, {x2, x6}, {x3, x7}."""
    return tl.inline_asm_elementwise(asm=REPAIR_ASM, constraints="=r,=r,=r,=r,r,r,r,r", args=[x0, x1, x2, x3],
                                     dtype=(tl.int32, tl.int32, tl.int32, tl.int32), is_pure=True, pack=1)
W8_WORD_ASM = tl.constexpr(_w8_word_asm())


@triton.jit
def _w8_zero_point_half2_bits(zero_point):
    """int32 holding -(8 + z / 128) as float16 in both halves, z = 0..255: 0xC800 is -8, its last mantissa bit 1/128."""
    return (zero_point * 0x00010001) | -0x37FF3800  # -0x37FF3800 = 0xC800C800 as int32


@triton.jit
def _w8_word_dot_arithmetic(word, x_row_ptr, w, K, stride_xk, z):
    """The twin of W8_WORD_ASM in float32: sum_i (u_i - z) / 128 * x_i over the 4 bytes of each word."""
    s = tl.zeros(word.shape, tl.float32)
    for i in tl.static_range(4):
        u = (byte_as_mantissa(word, i, 0) - 1.0) * 256.0  # the byte as an exact float
        k = 4 * w + i
        x = tl.load(x_row_ptr + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
        s += ((u - z) * 0.0078125) * x
    return s


@triton.jit
def _load_row(q_ptr, row, w, first, scale_ptr, zero_ptr, N, K_words, stride_qn, stride_sn, stride_sg, zero_row_stride,
              BITS: tl.constexpr, SYMMETRIC: tl.constexpr, GROUP_WORDS: tl.constexpr, EVEN: tl.constexpr):
    """One output row's loads for a K step: its words [CHUNKS, CHUNK_WORDS] (w: their indices), and at 4 bits each
    chunk's scale (float32) and zero point as float16x2 bits (zz) [CHUNKS, 1] (first: each chunk's first word)."""
    if EVEN:
        word = tl.load(q_ptr + row * stride_qn + w)
        in_bounds = tl.full(first.shape, 1, tl.int1)
    else:
        word = tl.load(q_ptr + row * stride_qn + w, mask=(row + 0 * w < N) & (w < K_words), other=0)
        in_bounds = (row + 0 * first < N) & (first < K_words)
    if BITS == 4:
        g = first // GROUP_WORDS  # [CHUNKS, 1]: the group of each chunk
        scale = load_scale(scale_ptr, row, g, stride_sn, stride_sg, in_bounds)  # [CHUNKS, 1]
        zero_point = load_zero_point(zero_ptr, row, g, zero_row_stride, in_bounds, 4, SYMMETRIC)
    else:  # one scale per row, applied after the loop
        scale = tl.full(first.shape, 1.0, tl.float32)
        if SYMMETRIC:
            zero_point = tl.full(first.shape, 128, tl.int32)
        else:
            zero_point = tl.load(zero_ptr + (row + 0 * first) * zero_row_stride, mask=in_bounds, other=0).to(tl.int32)
    return word, scale, zero_point


@triton.jit
def _row_dot(word, scale, zero_point, w, x0, x1, x2, x3, X_row, K, stride_xk,
             BITS: tl.constexpr, FLIP: tl.constexpr, PTX: tl.constexpr, LOP3: tl.constexpr = False):
    """One output row's share of a K step: [CHUNKS, CHUNK_WORDS] float32 partial sums (4 bits: times the group's
    scale, over 16; 8 bits: unscaled, over 128). w: the step's word indices; x0..x3: the X pairs they meet."""
    if BITS == 4:
        if PTX and LOP3:
            s = tl.inline_asm_elementwise(asm=W4_WORD_LOP3_ASM, constraints="=f,r,r,r,r,r,r,r",
                                          args=[word, x0, x1, x2, x3, zero_point_half2_bits(zero_point),
                                                (zero_point * 0x00100010) | -0x3BFF3C00],  # 0xC400C400 | z << 4
                                          dtype=tl.float32, is_pure=True, pack=1)
        elif PTX:
            s = tl.inline_asm_elementwise(asm=W4_WORD_ASM, constraints="=f,r,r,r,r,r,r",
                                          args=[word, x0, x1, x2, x3, zero_point_half2_bits(zero_point)],
                                          dtype=tl.float32, is_pure=True, pack=1)
        else:
            s = word_dot_arithmetic(word, X_row, w, K, stride_xk, -(64.0 + zero_point.to(tl.float32) * 0.0625))
        return scale * s
    else:
        word = word ^ FLIP  # signed codes q -> u = q + 128 (FLIP: 0x80808080 as int32)
        if PTX:
            return tl.inline_asm_elementwise(asm=W8_WORD_ASM, constraints="=f,r,r,r,r",
                                             args=[word, x0, x1, _w8_zero_point_half2_bits(zero_point)],
                                             dtype=tl.float32, is_pure=True, pack=1)
        else:
            return _w8_word_dot_arithmetic(word, X_row, w, K, stride_xk, zero_point.to(tl.float32))


@triton.jit
def _load_x(X_row, w, K_words, PAIRS: tl.constexpr, PTX: tl.constexpr, EVEN: tl.constexpr):
    """The X pairs of a step's words, [CHUNKS, CHUNK_WORDS, PAIRS] int32 (PTX; else a placeholder)."""
    p = PAIRS * w[:, :, :, None] + tl.arange(0, PAIRS)[None, None, None, :]
    if not PTX:
        return p
    if EVEN:
        return tl.load(X_row + p)
    return tl.load(X_row + p, mask=w[:, :, :, None] < K_words, other=0)


@triton.jit
def _two_rows(q_ptr, row, w, first, x0, x1, x2, x3, X_row, scale_ptr, zero_ptr, N, K, K_words, stride_qn, stride_sn,
              stride_sg, zero_row_stride, stride_xk, BITS: tl.constexpr, SYMMETRIC: tl.constexpr, FLIP: tl.constexpr,
              GROUP_WORDS: tl.constexpr, PTX: tl.constexpr, EVEN: tl.constexpr, SECOND: tl.constexpr,
              LOP3: tl.constexpr):
    """Rows ``row`` and ``row + 1`` (SECOND) of a K step: their loads, then their partial sums (zeros without SECOND)."""
    word_a, scale_a, zp_a = _load_row(q_ptr, row, w, first, scale_ptr, zero_ptr, N, K_words, stride_qn, stride_sn,
                                      stride_sg, zero_row_stride, BITS, SYMMETRIC, GROUP_WORDS, EVEN)
    if SECOND:
        word_b, scale_b, zp_b = _load_row(q_ptr, row + 1, w, first, scale_ptr, zero_ptr, N, K_words, stride_qn,
                                          stride_sn, stride_sg, zero_row_stride, BITS, SYMMETRIC, GROUP_WORDS, EVEN)
    d_a = _row_dot(word_a, scale_a, zp_a, w, x0, x1, x2, x3, X_row, K, stride_xk, BITS, FLIP, PTX, LOP3)
    if SECOND:
        d_b = _row_dot(word_b, scale_b, zp_b, w, x0, x1, x2, x3, X_row, K, stride_xk, BITS, FLIP, PTX, LOP3)
    else:
        d_b = tl.zeros(d_a.shape, tl.float32)
    return d_a, d_b


@triton.jit
def _store_row(acc, row, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """Y[m, row] = the sum of the row's partial sums, scaled back (and the bias added)."""
    y = tl.sum(tl.sum(tl.sum(acc, axis=2), axis=1), axis=0)
    if BITS == 4:
        y = y * 16.0
    else:
        y = y * (128.0 * tl.load(scale_ptr + row * stride_sn, mask=row < N, other=0.0).to(tl.float32))
    if HAS_BIAS:
        y += tl.load(bias_ptr + row, mask=row < N, other=0.0).to(tl.float32)
    tl.store(Y_row + row, y.to(Y_row.dtype.element_ty), mask=row < N)


@triton.jit(do_not_specialize=["one"])
def gemv_rows_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, bias_ptr, Y_ptr,  # X_ptr: X viewed as int32 pairs of float16 when PTX
    N, K, K_words, one,  # one: a run-time 1 (see the module docstring)
    stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xm, stride_xk, stride_ym,
    BITS: tl.constexpr, SYMMETRIC: tl.constexpr, HAS_BIAS: tl.constexpr, LOP3: tl.constexpr,
    GROUP_WORDS: tl.constexpr,  # 4 bits: words per group (a chunk lies inside one)
    PTX: tl.constexpr, EVEN: tl.constexpr,  # EVEN: K_words % STEP == 0, N % ROWS == 0: no masks
    ROWS: tl.constexpr,  # output rows per program (1, 2, 4 or 8), all in every thread
    PER_THREAD: tl.constexpr,  # words of each chunk in one thread (sharing its scale and zero point)
    STAGES: tl.constexpr,  # K steps in flight: Triton's pipeliner copies them asynchronously into shared memory
    CHUNKS: tl.constexpr, CHUNK_WORDS: tl.constexpr,
):
    """Program (row m of X, ROWS outputs) streams the whole of K: Y[m, n0 .. n0 + ROWS)."""
    m, n0 = tl.program_id(0), tl.program_id(1) * ROWS
    PAIRS: tl.constexpr = 4 if BITS == 4 else 2  # float16 pairs of X per word
    FLIP: tl.constexpr = -0x7F7F7F80 if (BITS == 8 and SYMMETRIC) else 0
    STEP: tl.constexpr = CHUNKS * CHUNK_WORDS
    WORDS_T: tl.constexpr = CHUNK_WORDS // PER_THREAD  # the threads of a chunk
    h = tl.arange(0, PER_THREAD)[:, None, None]  # [PER_THREAD, 1, 1]: in each thread's registers
    c = tl.arange(0, CHUNKS)[None, :, None]  # [1, CHUNKS, 1]
    t = tl.arange(0, WORDS_T)[None, None, :]  # [1, 1, WORDS_T]
    # word h * WORDS_T + t of chunk c; times a run-time 1, so that Triton lays the words out one per thread
    # along t and c and keeps the PER_THREAD words of a chunk in each thread (see the module docstring)
    w_step = (c * CHUNK_WORDS + h * WORDS_T + t) * one  # [PER_THREAD, CHUNKS, WORDS_T]
    X_row = X_ptr + m * stride_xm
    Y_row = Y_ptr + m * stride_ym
    acc0 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc1 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc2 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc3 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc4 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc5 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc6 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    acc7 = tl.zeros((PER_THREAD, CHUNKS, WORDS_T), tl.float32)
    for w0 in tl.range(0, K_words, STEP, num_stages=STAGES):
        w = w0 + w_step
        first = w0 + c * CHUNK_WORDS  # [1, CHUNKS, 1]: the first word of each chunk
        xq = _load_x(X_row, w, K_words, PAIRS, PTX, EVEN)
        if PTX:  # split the pairs into PAIRS tensors laid out like w
            if PAIRS == 4:
                xa, xb = tl.split(tl.reshape(xq, (PER_THREAD, CHUNKS, WORDS_T, 2, 2)))  # pairs 0, 2 / 1, 3
                x0, x2 = tl.split(xa)
                x1, x3 = tl.split(xb)
                if LOP3:
                    x0, x1, x2, x3 = _repair_x(x0, x1, x2, x3)
            else:
                x0, x1 = tl.split(xq)
                x2, x3 = x0, x1
        else:
            x0, x1, x2, x3 = w, w, w, w  # unused: the twin loads X itself
        d0, d1 = _two_rows(q_ptr, n0, w, first, x0, x1, x2, x3, X_row, scale_ptr, zero_ptr, N, K, K_words, stride_qn,
                           stride_sn, stride_sg, zero_row_stride, stride_xk, BITS, SYMMETRIC, FLIP, GROUP_WORDS, PTX,
                           EVEN, ROWS > 1, LOP3)
        acc0 += d0
        acc1 += d1
        if ROWS > 2:
            d2, d3 = _two_rows(q_ptr, n0 + 2, w, first, x0, x1, x2, x3, X_row, scale_ptr, zero_ptr, N, K, K_words,
                               stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xk, BITS, SYMMETRIC, FLIP,
                               GROUP_WORDS, PTX, EVEN, True, LOP3)
            acc2 += d2
            acc3 += d3
        if ROWS > 4:
            d4, d5 = _two_rows(q_ptr, n0 + 4, w, first, x0, x1, x2, x3, X_row, scale_ptr, zero_ptr, N, K, K_words,
                               stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xk, BITS, SYMMETRIC, FLIP,
                               GROUP_WORDS, PTX, EVEN, True, LOP3)
            d6, d7 = _two_rows(q_ptr, n0 + 6, w, first, x0, x1, x2, x3, X_row, scale_ptr, zero_ptr, N, K, K_words,
                               stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xk, BITS, SYMMETRIC, FLIP,
                               GROUP_WORDS, PTX, EVEN, True, LOP3)
            acc4 += d4
            acc5 += d5
            acc6 += d6
            acc7 += d7
    _store_row(acc0, n0 + 0, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
    if ROWS > 1:
        _store_row(acc1, n0 + 1, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
    if ROWS > 2:
        _store_row(acc2, n0 + 2, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
        _store_row(acc3, n0 + 3, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
    if ROWS > 4:
        _store_row(acc4, n0 + 4, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
        _store_row(acc5, n0 + 5, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
        _store_row(acc6, n0 + 6, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)
        _store_row(acc7, n0 + 7, Y_row, scale_ptr, bias_ptr, N, stride_sn, BITS, HAS_BIAS)


# (max M, config): block_n = ROWS, block_k = codes per K step, unroll = the most words in a chunk,
# num_stages >= 2: the next step's loads issued by hand before this step's math
W4_TABLE = [(1 << 62, Config(block_n=2, block_k=512, num_warps=1, num_stages=2, unroll=16))]
W8_TABLE = [(1 << 62, Config(block_n=2, block_k=128, num_warps=1, num_stages=2, unroll=32))]


def supports(X: torch.Tensor, qweight: torch.Tensor, n_bits: int, group_len: int, has_g_idx: bool) -> bool:
    """Whether gemv_rows takes the call: whole int32 words per row (aligned), the default g_idx, and at 4 bits
    groups of a multiple of 8 codes (a word inside one group)."""
    if qweight.shape[1] % 4 or qweight.stride(1) != 1 or qweight.stride(0) % 4 or qweight.data_ptr() % 4:
        return False
    return n_bits == 8 or (not has_g_idx and group_len % 8 == 0)


def uses_ptx(X: torch.Tensor, kernel=gemv_rows_kernel) -> bool:
    """The float16x2 inline PTX runs on a GPU for float16 X contiguous along K with 4-byte aligned rows."""
    from .checks import is_interpreted
    return (not is_interpreted(kernel) and X.dtype == torch.float16 and X.stride(1) == 1
            and X.stride(0) % 2 == 0 and X.data_ptr() % 4 == 0)


def launch(X, qweight, scale, zero_point, bias, out, n_bits: int, group_len: int, config: Config,
           ptx: bool | None = None, per_thread: int = 1, lop3: bool = False) -> None:
    """Y = X @ W_hat.T (+ bias) into ``out`` [M, N] on checked arguments (supports() true): grid (M, N / ROWS)."""
    M, K = X.shape
    N = qweight.shape[0]
    words = qweight.view(torch.int32)  # [N, K_words]
    K_words = words.shape[1]
    step = max(config.block_k // (8 if n_bits == 4 else 4), 1)  # words per K step
    chunk_words = min(config.unroll, step)
    if n_bits == 4:
        chunk_words = min(chunk_words, (group_len // 8) & -(group_len // 8))  # a power of two inside one group
    chunks = max(step // chunk_words, 1)
    per_thread = min(per_thread, chunk_words)
    ptx = uses_ptx(X) if ptx is None else ptx
    X_arg = X.view(torch.int32) if ptx else X
    scale2 = scale if scale.dim() == 2 else scale.reshape(-1, 1)
    layout_sn = scale2.stride(0) if scale2.shape[0] > 1 else 0
    if n_bits == 4:
        n_groups = scale2.shape[1]
        zero_row_stride = n_groups if scale2.shape[0] > 1 else 0
    else:
        zero_row_stride = 1 if (zero_point is not None and zero_point.numel() > 1) else 0
    grid = (M, triton.cdiv(N, config.block_n))
    gemv_rows_kernel[grid](
        X_arg, words, scale2, zero_point if zero_point is not None else words, bias if bias is not None else out, out,
        N, K, K_words, 1, words.stride(0), layout_sn, scale2.stride(1), zero_row_stride,
        X_arg.stride(0), X_arg.stride(1), out.stride(0),
        BITS=n_bits, SYMMETRIC=zero_point is None, HAS_BIAS=bias is not None, LOP3=lop3,
        GROUP_WORDS=max(group_len // 8, 1) if n_bits == 4 else 1, PTX=ptx,
        EVEN=ptx and K_words % (chunks * chunk_words) == 0 and N % config.block_n == 0,
        ROWS=config.block_n, PER_THREAD=per_thread, CHUNKS=chunks, CHUNK_WORDS=chunk_words,
        STAGES=config.num_stages, num_warps=config.num_warps, num_stages=config.num_stages,
    )
