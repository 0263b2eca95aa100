"""Tensor-core kernels for a few rows of X (decode, M = 1 .. 64): W4A16 v7 and W8A16 v5.

    Y.T [N, M] = W_hat [N, K] @ X.T [K, M]        (the weight as the dot's left operand: "swap AB")

    X           [M, K]           float16 / bfloat16 / float32 (float16 / float32 in the interpreter), M <= BLOCK_M
    q           [N, K_words]     QuantLinear.qweight viewed as int32 words: 8 codes (4 bits) or 4 codes (8 bits) each
    scale       [rows, n_groups] float16 (W8A16: one group, the whole row), rows = N or 1
    zero_point  the packed uint8 codes, or None when symmetric
    Y           [M, N]           X's dtype (or a float32 workspace that SPLIT_K programs add into)

Why another GEMM. With M = 16 the FP16 matmul still only streams its weight, so W4A16 can be up to
4x faster, but v3 (w4a16_fast.py) decodes every code into float32, multiplies by its scale,
converts to float16 and only then feeds tl.dot: about a dozen instructions per code, and its
tiles of 16 rows of X make the tensor cores wait on the decoding. Here:

* Every row of X in one program. BLOCK_M covers all M rows, so each weight tile is read once.
  tl.dot needs 16 or more rows and columns: the weight tile [BLOCK_N, BLOCK_K] is the left
  operand and X's tile, transposed, the right one, so BLOCK_M (>= 16) pads M = 1..16 cheaply.
* Integers into the tensor cores, the scale after the dot. A K step stays inside one group
  (BLOCK_K divides the group length), so the step's scale is one number per output row n:
      sum_k x_k (q_k - z) s = s * sum_k x_k (q_k - z)
  The dot multiplies the exact integers q - z (|q - z| <= 255: exact in float16 and bfloat16)
  by X, and each step adds its [BLOCK_N, BLOCK_M] result times s into the accumulator.
* Two codes per instruction (float16 X on a GPU, inline PTX): the magic number of decode.py. For 4 bits, a
  prmt and a lop3 make the float16 pair {1024 + c_2j, 1024 + c_2j+1} of byte j, one sub.f16x2 takes 1024 + z
  off both: 8 codes in 1 shift, 4 prmt, 4 lop3 and 4 HSUB2.
  For 8 bits a prmt puts two bytes under the exponent byte 0x64: {1024 + b_0, 1024 + b_1}.
  The arithmetic twin (interpreter, bfloat16 / float32 X) computes the same integers with shifts and masks.
* No masks on whole tiles: when K is a whole number of K steps per split and N of BLOCK_N, the weight
  loads carry no mask (rows past N are clamped to the last row, and never stored).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .checks import is_interpreted
from .decode import as_int32_words, load_scale, load_zero_point
from .launch import (Config, finish_split_k, largest_power_of_two_dividing, pick, split_for_programs,
                     split_k_buffers)

MAX_M = 64  # the largest BLOCK_M: beyond it the GEMMs (w4a16 v3 / w8a16 v2) tile M
# (max M, config), from a CUDA-graph sweep on an H100 (benchmarks/kernel_speed.py --sweep; M = 16 for W4A16, M = 1
# for W8A16, the four benchmark shapes). block_k = codes per K step (W4A16: capped by the group length); unroll 2 =
# the next step's loads issued by hand; split_k is a cap: a table config takes the largest power of two at most it
# that keeps the grid within PROGRAMS_PER_SM programs per SM (the register-limited occupancy: about one wave, the
# best split on every sweep shape)
W4_TABLE = [(64, Config(block_m=16, block_n=64, block_k=128, split_k=8, num_warps=4, num_stages=1, unroll=2))]
W8_TABLE = [(64, Config(block_m=16, block_n=32, block_k=128, split_k=8, num_warps=4, num_stages=3, unroll=1))]
PROGRAMS_PER_SM = {4: 4, 8: 8}
INTERPRETER_CONFIG = Config(block_m=16, block_n=16, block_k=64, split_k=1, num_warps=4, num_stages=1)
MIN_GROUP = 32  # W4A16: groups of a multiple of this many codes (see supports)


# ---------------------------------------------------------------- decoding a tile of words


def _nibbles_asm() -> str:
    """PTX: one int32 word ($8) and the float16 pair 1024 + z ($9) -> the 8 codes minus z, as float16 ($0..$7).

    Byte j holds codes 2j (low nibble) and 2j + 1 (high nibble); prmt puts byte j of the word and of word >> 4
    into bytes 0 and 2, the lop3 keeps their low nibbles under 0x6400: {1024 + c_2j, 1024 + c_2j+1}. Pairs of
    neighbouring columns stay in one register, as the dot's operand wants them (no repacking)."""
    lines = ["{", ".reg .b32 t, p, v;", "shr.u32 t, $8, 4;"]
    for j in range(4):
        lines += [f"prmt.b32 p, $8, t, 0x{0x4400 + 0x1111 * j:04X};",  # byte j -> byte 0, byte j of word >> 4 -> byte 2
                  "lop3.b32 p, p, 0x000F000F, 0x64006400, 0xEA;",  # (p & 0x000F000F) | 0x64006400
                  "sub.rn.f16x2 v, p, $9;",  # exact: integers -15 .. 15
                  f"mov.b32 {{${2 * j}, ${2 * j + 1}}}, v;"]
    return "\n".join(lines + ["}"])


def _bytes_asm() -> str:
    """PTX: one int32 word ($4, bytes already XOR FLIP) and 1024 + z ($5) -> the 4 codes minus z, float16 ($0..$3)."""
    lines = ["{", ".reg .b32 e, p, v;", "mov.b32 e, 0x64646464;"]
    for pair, selector in ((0, 0x4140), (1, 0x4342)):  # bytes (0, 1) and (2, 3), each under the exponent byte 0x64
        lines += [f"prmt.b32 p, $4, e, 0x{selector:04X};",  # {1024 + b_2pair, 1024 + b_2pair+1}
                  "sub.rn.f16x2 v, p, $5;",  # exact: integers -255 .. 255
                  f"mov.b32 {{${2 * pair}, ${2 * pair + 1}}}, v;"]
    return "\n".join(lines + ["}"])


NIBBLES_ASM = tl.constexpr(_nibbles_asm())
BYTES_ASM = tl.constexpr(_bytes_asm())


@triton.jit
def decode_nibbles_as_tile(word, zero_point, DTYPE: tl.constexpr, PTX: tl.constexpr):
    """[BN, BW] int32 words (8 codes each) and [BN, 1] int32 zero points -> [BN, 8 BW] (q - z) in DTYPE, column 8w + i.

    Codes c_i (i = 0..7, nibble i) come out as 8 tensors [BN, BW]; the joins stack them so that the last three
    axes (d1, d2, d3) hold code d3 + 2 d2 + 4 d1, and the reshape reads [BN, BW, 2, 2, 2] as [BN, 8 BW].
    """
    BN: tl.constexpr = word.shape[0]
    BW: tl.constexpr = word.shape[1]
    if PTX:  # float16: 1024 + z in both halves of an int32 is (z * 0x00010001) | 0x64006400
        zz = (zero_point * 0x00010001) | 0x64006400
        c0, c1, c2, c3, c4, c5, c6, c7 = tl.inline_asm_elementwise(
            asm=NIBBLES_ASM, constraints="=h,=h,=h,=h,=h,=h,=h,=h,r,r", args=[word, zz],
            dtype=(tl.float16, tl.float16, tl.float16, tl.float16, tl.float16, tl.float16, tl.float16,
                   tl.float16), is_pure=True, pack=1)
    else:
        c0 = ((word & 0xF) - zero_point).to(DTYPE)  # exact integers -15 .. 15
        c1 = (((word >> 4) & 0xF) - zero_point).to(DTYPE)
        c2 = (((word >> 8) & 0xF) - zero_point).to(DTYPE)
        c3 = (((word >> 12) & 0xF) - zero_point).to(DTYPE)
        c4 = (((word >> 16) & 0xF) - zero_point).to(DTYPE)
        c5 = (((word >> 20) & 0xF) - zero_point).to(DTYPE)
        c6 = (((word >> 24) & 0xF) - zero_point).to(DTYPE)
        c7 = (((word >> 28) & 0xF) - zero_point).to(DTYPE)
    tile = tl.join(tl.join(tl.join(c0, c4), tl.join(c2, c6)), tl.join(tl.join(c1, c5), tl.join(c3, c7)))
    return tl.reshape(tile, (BN, 8 * BW))  # [BN, BW, 2, 2, 2] -> [BN, BLOCK_K]


@triton.jit
def decode_bytes_as_tile(word, zero_point, DTYPE: tl.constexpr, PTX: tl.constexpr):
    """[BN, BW] int32 words (4 byte codes each, already XOR FLIP) and [BN, 1] int32 zero points ->
    [BN, 4 BW] (u - z) in DTYPE, column 4w + i (the joins as decode_nibbles_as_tile's)."""
    BN: tl.constexpr = word.shape[0]
    BW: tl.constexpr = word.shape[1]
    if PTX:
        zz = (zero_point * 0x00010001) | 0x64006400
        c0, c1, c2, c3 = tl.inline_asm_elementwise(
            asm=BYTES_ASM, constraints="=h,=h,=h,=h,r,r", args=[word, zz],
            dtype=(tl.float16, tl.float16, tl.float16, tl.float16),
            is_pure=True, pack=1)
    else:
        c0 = ((word & 0xFF) - zero_point).to(DTYPE)  # exact integers -255 .. 255
        c1 = (((word >> 8) & 0xFF) - zero_point).to(DTYPE)
        c2 = (((word >> 16) & 0xFF) - zero_point).to(DTYPE)
        c3 = (((word >> 24) & 0xFF) - zero_point).to(DTYPE)
    tile = tl.join(tl.join(c0, c2), tl.join(c1, c3))
    return tl.reshape(tile, (BN, 4 * BW))  # [BN, BW, 2, 2] -> [BN, BLOCK_K]


# ---------------------------------------------------------------- the kernel


@triton.jit
def _load_step(X_ptr, q_ptr, scale_ptr, zero_ptr, n_load, rm, w_step, k_step, w0, M, N, K, K_words, group_words,
               stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xm, stride_xk,
               N_BITS: tl.constexpr, SYMMETRIC: tl.constexpr, EVEN: tl.constexpr):
    """What the K step starting at word w0 reads: its words [BLOCK_N, BLOCK_W], X's tile [BLOCK_M, BLOCK_K], and
    (4 bits) the step's zero points and scales [BLOCK_N, 1] (8 bits: 0, 0, the row's are read once)."""
    CODES: tl.constexpr = 32 // N_BITS
    k = CODES * w0 + k_step  # [1, BLOCK_K]
    if EVEN:
        word = tl.load(q_ptr + n_load * stride_qn + w0 + w_step)  # [BLOCK_N, BLOCK_W] int32
        x = tl.load(X_ptr + rm[:, None] * stride_xm + k * stride_xk, mask=rm[:, None] < M, other=0.0)
    else:
        word = tl.load(q_ptr + n_load * stride_qn + w0 + w_step, mask=w0 + w_step < K_words, other=0)
        x = tl.load(X_ptr + rm[:, None] * stride_xm + k * stride_xk, mask=(rm[:, None] < M) & (k < K), other=0.0)
    if N_BITS == 4:
        g = tl.minimum(w0, K_words - 1) // group_words  # the step's group (BLOCK_W divides group_words); a step
        # past K (the last slice) takes the last group, so its scale is read inside the tensor (0 * NaN = NaN)
        in_bounds = n_load < N  # all true: n_load is clamped (a mask the compiler can drop)
        zero_point = load_zero_point(zero_ptr, n_load, g, zero_row_stride, in_bounds, 4, SYMMETRIC)  # [BLOCK_N, 1]
        scale = load_scale(scale_ptr, n_load, g, stride_sn, stride_sg, in_bounds)  # [BLOCK_N, 1] float32
    else:
        zero_point, scale = 0, 0.0
    return word, x, zero_point, scale


@triton.jit
def few_rows_kernel(
    X_ptr, q_ptr, scale_ptr, zero_ptr, bias_ptr, Y_ptr,  # [M, K], int32 [N, K_words], [rows, n_groups], ..., [M, N]
    partial_ptr, arrived_ptr,  # SPLIT_K > 1: float32 [M, N] partial sums and int32 [n-blocks] counters, all zero
    M, N, K, K_words, k_steps,  # k_steps: K steps per split (BLOCK_W words each)
    group_words, stride_qn, stride_sn, stride_sg, zero_row_stride,  # group_words: words per group (W8A16: K_words)
    stride_xm, stride_xk, stride_ym,
    N_BITS: tl.constexpr,  # 4: 8 codes a word (w4a16); 8: 4 codes a word (w8a16, one scale per row)
    SYMMETRIC: tl.constexpr,  # no zero points stored: z = 8 (4 bits) or the int8 codes flipped to u = q + 128
    HAS_BIAS: tl.constexpr, PTX: tl.constexpr, DOT_PRECISION: tl.constexpr,  # "ieee" for float32 X, else "tf32"
    EVEN: tl.constexpr,  # K_words % (BLOCK_W * SPLIT_K) == 0, K = CODES * K_words: no masks along K
    PREFETCH: tl.constexpr,  # issue the next K step's loads before this step's math (by hand)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, SPLIT_K: tl.constexpr,
):
    """Program (n-block, k-slice): acc [BLOCK_N, BLOCK_M] += scale * (q - z) [BLOCK_N, BLOCK_K] @ X.T [BLOCK_K, BLOCK_M]."""
    CODES: tl.constexpr = 32 // N_BITS  # codes per word
    BLOCK_K: tl.constexpr = CODES * BLOCK_W
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    n_load = tl.minimum(n, N - 1)[:, None]  # [BLOCK_N, 1]: rows past N read the last row (never stored)
    rm = tl.arange(0, BLOCK_M)  # [BLOCK_M]: every row of X
    w_step = tl.arange(0, BLOCK_W)[None, :]  # [1, BLOCK_W]
    k_step = tl.arange(0, BLOCK_K)[None, :]  # [1, BLOCK_K]
    if N_BITS == 8:  # one zero point per row, for the whole K
        if SYMMETRIC:
            zero_8 = tl.full((BLOCK_N, 1), 128, tl.int32)  # u = q XOR 0x80 = q + 128
        else:
            zero_8 = load_zero_point(zero_ptr, n_load, 0, zero_row_stride, n_load < N, 8, False)
    layout = (M, N, K, K_words, group_words, stride_qn, stride_sn, stride_sg, zero_row_stride, stride_xm, stride_xk)
    w_first = pid_k * k_steps * BLOCK_W
    if PREFETCH:
        word_next, x_next, zero_next, scale_next = _load_step(X_ptr, q_ptr, scale_ptr, zero_ptr, n_load, rm, w_step,
                                                              k_step, w_first, *layout, N_BITS, SYMMETRIC, EVEN)
    acc = tl.zeros((BLOCK_N, BLOCK_M), tl.float32)
    for t in range(0, k_steps):
        w0 = w_first + t * BLOCK_W  # the step's first word
        if PREFETCH:
            word, x, zero_point, scale = word_next, x_next, zero_next, scale_next
            w_next = w0 + BLOCK_W  # past the end of K: masked off, or (EVEN) the last step read again
            if EVEN:
                w_next = tl.minimum(w_next, K_words - BLOCK_W)
            word_next, x_next, zero_next, scale_next = _load_step(X_ptr, q_ptr, scale_ptr, zero_ptr, n_load, rm,
                                                                  w_step, k_step, w_next, *layout, N_BITS, SYMMETRIC,
                                                                  EVEN)
        else:
            word, x, zero_point, scale = _load_step(X_ptr, q_ptr, scale_ptr, zero_ptr, n_load, rm, w_step, k_step,
                                                    w0, *layout, N_BITS, SYMMETRIC, EVEN)
        if N_BITS == 4:
            W = decode_nibbles_as_tile(word, zero_point, x.dtype, PTX)  # [BLOCK_N, BLOCK_K] q - z
            acc += scale * tl.dot(W, tl.trans(x), input_precision=DOT_PRECISION)
        else:
            if SYMMETRIC:
                word = word ^ -0x7F7F7F80  # 0x80808080 as int32: int8 two's complement -> u = q + 128 per byte
            W = decode_bytes_as_tile(word, zero_8, x.dtype, PTX)
            acc = tl.dot(W, tl.trans(x), acc, input_precision=DOT_PRECISION)  # the row's scale once, after the loop
    if N_BITS == 8:
        acc *= load_scale(scale_ptr, n_load, 0, stride_sn, stride_sg, n_load < N)
    if HAS_BIAS:  # added once: by the first K slice
        acc += tl.where(pid_k == 0, tl.load(bias_ptr + n_load).to(tl.float32), 0.0)
    Y = Y_ptr + rm[None, :] * stride_ym + n[:, None]  # [BLOCK_N, BLOCK_M]: Y.T's tile
    mask = (rm[None, :] < M) & (n[:, None] < N)
    if SPLIT_K == 1:
        tl.store(Y, acc.to(Y_ptr.dtype.element_ty), mask=mask)
    else:  # add into the partial sums; the slice that arrives last writes Y and leaves the buffers zero again
        finish_split_k(acc, Y, partial_ptr + rm[None, :] * N + n[:, None], mask, arrived_ptr + pid_n, SPLIT_K)


# ---------------------------------------------------------------- launching


def supports(X: torch.Tensor, qweight: torch.Tensor, n_bits: int, group_len: int, has_g_idx: bool) -> bool:
    """Whether few_rows runs this call: M <= MAX_M, rows of whole aligned int32 words, the default g_idx, and
    (4 bits) groups of a multiple of 32 codes (a K step of at least 32 inside one group). tl.dot takes K steps of
    16, but with them (groups of 16 or 48) Triton 3.6 compiled wrong results on an H100 for BLOCK_N = 16 unless
    the next step's loads were issued by hand, so they are left out."""
    if X.shape[0] > MAX_M or has_g_idx or as_int32_words(qweight) is None:
        return False
    return n_bits == 8 or largest_power_of_two_dividing(group_len, 1 << 30) >= MIN_GROUP


def uses_ptx(X: torch.Tensor) -> bool:
    """The inline-PTX decoding runs for float16 X on a GPU; elsewhere the arithmetic twin."""
    return X.dtype == torch.float16 and not is_interpreted(few_rows_kernel)


def launch(X, qweight, scale, zero_point, bias, out, n_bits: int, group_len: int, config: Config | None = None) -> None:
    """Run few_rows_kernel on arguments the wrappers (w4a16_matmul, w8a16_matmul) have checked; ``supports`` true.

    config: block_m is raised to cover M (16 .. 64), block_k (codes per K step) is capped by the group length
    (4 bits), unroll >= 2 issues the next K step's loads by hand before this step's math (PREFETCH), split_k is
    used as given; None: W4_TABLE / W8_TABLE on a GPU (split_k capped to about one wave of programs),
    INTERPRETER_CONFIG in the interpreter.
    """
    M, K = X.shape
    N = out.shape[1]
    words = as_int32_words(qweight)  # [N, K_words]
    K_words = words.shape[1]
    from_table = config is None and not is_interpreted(few_rows_kernel)
    if config is None:
        config = pick(W4_TABLE if n_bits == 4 else W8_TABLE, M) if from_table else INTERPRETER_CONFIG
    codes = 32 // n_bits
    block_k = config.block_k
    if n_bits == 4:
        block_k = min(block_k, largest_power_of_two_dividing(group_len, 1 << 30))
    block_w = max(block_k // codes, 32 // codes)  # K steps of 32 codes or more (supports)
    block_m = max(16, config.block_m, triton.next_power_of_2(M))
    split_k = config.split_k
    if from_table:  # about one wave of programs
        sms = torch.cuda.get_device_properties(X.device).multi_processor_count
        split_k = split_for_programs(triton.cdiv(N, config.block_n), PROGRAMS_PER_SM[n_bits] * sms, split_k)
    split_k = min(split_k, triton.cdiv(K_words, block_w))
    k_steps = triton.cdiv(triton.cdiv(K_words, block_w), split_k)
    rows = scale.shape[0]
    grid = (triton.cdiv(N, config.block_n), split_k)
    partial, arrived = (out, out) if split_k == 1 else split_k_buffers(out.device, M, N, grid[0])
    few_rows_kernel[grid](
        X, words, scale, zero_point if zero_point is not None else scale, bias if bias is not None else scale, out,
        partial, arrived, M, N, K, K_words, k_steps,
        group_len // codes if n_bits == 4 else K_words, words.stride(0), scale.stride(0) if rows > 1 else 0,
        scale.stride(1), (scale.shape[1] if n_bits == 4 else 1) if rows > 1 else 0, X.stride(0), X.stride(1),
        out.stride(0),
        N_BITS=n_bits, SYMMETRIC=zero_point is None, HAS_BIAS=bias is not None,
        PTX=uses_ptx(X), DOT_PRECISION="ieee" if X.dtype == torch.float32 else "tf32",
        EVEN=K_words % (block_w * split_k) == 0 and K == codes * K_words,
        PREFETCH=config.unroll >= 2, BLOCK_M=block_m, BLOCK_N=config.block_n, BLOCK_W=block_w, SPLIT_K=split_k,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
