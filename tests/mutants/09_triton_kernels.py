"""Plausible wrong answers for notebook 09 (see tests/mutation.py). Each value is a whole answer cell.

The kernels' mutants are built from the solution's cell by replacing lines: each names the mistake."""

UNPACK_HEAD = '''@triton.jit
def unpack_int4_kernel(
    qweight_ptr,  # uint8 [N, ceil(K / 2)]: byte k // 2 of a row holds code k (low nibble = even k)
    q_ptr,        # int32 [N, K], contiguous: the codes, written by this kernel
    N, K,         # rows and columns of q
    stride_qn,    # bytes between two rows of qweight
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,  # tile of q owned by one program (BLOCK_K even)
):
    """Program (pid_n, pid_k) writes q[n, k] for the rows n and columns k of its [BLOCK_N, BLOCK_K] tile."""
'''

# the solution's body: one byte load, two nibbles
UNPACK_BYTES = '''    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)[:, None]  # [BLOCK_N, 1]
    j = tl.program_id(1) * (BLOCK_K // 2) + tl.arange(0, BLOCK_K // 2)[None, :]  # [1, BLOCK_K / 2] byte index
    byte = tl.load(qweight_ptr + n * stride_qn + j, mask=(n < N) & (2 * j < K), other=0).to(tl.int32)
    tl.store(q_ptr + n * K + 2 * j, byte & 0xF, mask=(n < N) & (2 * j < K))  # even columns: low nibble
    tl.store(q_ptr + n * K + 2 * j + 1, byte >> 4, mask=(n < N) & (2 * j + 1 < K))  # odd columns: high nibble
'''

# the other way the exercise offers: one load per code, shifted by (k % 2) * 4
UNPACK_CODES = '''    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)[:, None]  # [BLOCK_N, 1]
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]  # [1, BLOCK_K]
    mask = (n < N) & (k < K)
    byte = tl.load(qweight_ptr + n * stride_qn + k // 2, mask=mask, other=0).to(tl.int32)
    tl.store(q_ptr + n * K + k, (byte >> ((k % 2) * 4)) & 0xF, mask=mask)
'''


def _unpack(body: str, old: str = "", new: str = "") -> str:
    assert not old or old in body, old
    return UNPACK_HEAD + (body.replace(old, new) if old else body)


W4A16_HEAD = '''@triton.jit
def w4a16_kernel(
    X_ptr,        # [M, K] float16 / float32 activations, rows contiguous
    qweight_ptr,  # uint8 [N, ceil(K / 2)]: two codes per byte, low nibble = even k
    scale_ptr,    # float16 [N, n_groups], contiguous
    zero_ptr,     # uint8 [N, n_groups], contiguous: integer zero point of each group (8 for symmetric layers)
    Y_ptr,        # [M, N] output, X's dtype
    M, N, K,      # Y [M, N] = X [M, K] @ W_hat [N, K].T
    group_size, n_groups,  # column k belongs to group k // group_size; K = group_size * n_groups
    stride_xm, stride_qn, stride_ym,  # elements (bytes for qweight) between two rows
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,  # tile sizes, each >= 16
    DOT_PRECISION: tl.constexpr,  # "ieee" for float32 X (exact products), "tf32" otherwise: pass it to tl.dot
):
    """Program (pid_m, pid_n) computes Y[rows, cols] = X[rows, :] @ W_hat[cols, :].T for one [BLOCK_M, BLOCK_N] tile."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # [BLOCK_M]
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)  # [BLOCK_K]: the columns of X (rows of W_hat.T) of this step
'''

W4A16_BODY = '''        x = tl.load(X_ptr + rows[:, None] * stride_xm + k[None, :],
                    mask=(rows[:, None] < M) & (k[None, :] < K), other=0.0)  # [BLOCK_M, BLOCK_K]
        kk, nn = k[:, None], cols[None, :]  # [BLOCK_K, 1], [1, BLOCK_N]: a tile of W_hat.T
        mask = (kk < K) & (nn < N)
        byte = tl.load(qweight_ptr + nn * stride_qn + kk // 2, mask=mask, other=0).to(tl.int32)
        q = (byte >> ((kk % 2) * 4)) & 0xF  # [BLOCK_K, BLOCK_N] codes
        g = kk // group_size  # [BLOCK_K, 1]: the group of every column
        zero_point = tl.load(zero_ptr + nn * n_groups + g, mask=mask, other=0).to(tl.int32)
        scale = tl.load(scale_ptr + nn * n_groups + g, mask=mask, other=0.0).to(tl.float32)
        w = ((q - zero_point).to(tl.float32) * scale).to(x.dtype)  # [BLOCK_K, BLOCK_N] = W_hat.T tile
        acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)
'''

W4A16_TAIL = '''    tl.store(Y_ptr + rows[:, None] * stride_ym + cols[None, :], acc.to(Y_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < N))
'''


def _w4a16(*changes: tuple[str, str], head: str = W4A16_HEAD) -> str:
    body = W4A16_BODY
    for old, new in changes:
        assert old in body, old
        body = body.replace(old, new)
    return head + body + W4A16_TAIL


LAUNCH_GRID = '''def launch_grid(M, N, K, block_m, block_n, block_k, split_k):
    """((output tiles, split_k), k_tiles) for a split-K GEMM Y [M, N] = X [M, K] @ W.T, all sizes ints."""
'''

TILE = '''def tile_of_program(pid, M, N, block_m, block_n, group_m):
    """(row tile, column tile) of program pid: bands of group_m row tiles, column by column within a band."""
'''

MUTANTS = {
    "unpack_int4_kernel": {
        "reference call": '''from course_lib.kernels.decode import load_nibble_codes


''' + _unpack('''    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)[:, None]
    k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]
    mask = (n < N) & (k < K)
    tl.store(q_ptr + n * K + k, load_nibble_codes(qweight_ptr, n, k, stride_qn, mask), mask=mask)
'''),
        "high and low nibble swapped": _unpack(UNPACK_BYTES, "2 * j, byte & 0xF", "2 * j, byte >> 4").replace(
            "2 * j + 1, byte >> 4", "2 * j + 1, byte & 0xF"),
        "no row mask on the load (the store drops those rows)": _unpack(
            UNPACK_BYTES, "mask=(n < N) & (2 * j < K), other=0)", "mask=2 * j < K, other=0)"),
        "odd columns stored with the even columns' mask (odd K)": _unpack(
            UNPACK_BYTES, "mask=(n < N) & (2 * j + 1 < K))", "mask=(n < N) & (2 * j < K))"),
        "row stride K // 2 instead of stride_qn": _unpack(UNPACK_CODES, "n * stride_qn", "n * (K // 2)"),
        "shift by k % 2 instead of (k % 2) * 4": _unpack(UNPACK_CODES, "((k % 2) * 4)", "(k % 2)"),
        "high nibble not masked with 0xF for even k": _unpack(
            UNPACK_CODES, "(byte >> ((k % 2) * 4)) & 0xF", "tl.where(k % 2 == 0, byte, byte >> 4)"),
        "byte k instead of byte k // 2": _unpack(UNPACK_CODES, "k // 2, mask", "k, mask"),
        "program ids swapped": _unpack(UNPACK_CODES, "n = tl.program_id(0)", "n = tl.program_id(1)").replace(
            "k = tl.program_id(1)", "k = tl.program_id(0)"),
    },
    "w4a16_kernel": {
        "reference call": "from course_lib.kernels.decode import load_nibble_codes, load_scale, load_zero_point\n\n\n"
        + _w4a16(
            ("byte = tl.load(qweight_ptr + nn * stride_qn + kk // 2, mask=mask, other=0).to(tl.int32)\n"
             "        q = (byte >> ((kk % 2) * 4)) & 0xF  # [BLOCK_K, BLOCK_N] codes",
             "q = load_nibble_codes(qweight_ptr, nn, kk, stride_qn, mask)"),
            ("zero_point = tl.load(zero_ptr + nn * n_groups + g, mask=mask, other=0).to(tl.int32)",
             "zero_point = load_zero_point(zero_ptr, nn, g, n_groups, mask, 8, False)"),
            ("scale = tl.load(scale_ptr + nn * n_groups + g, mask=mask, other=0.0).to(tl.float32)",
             "scale = load_scale(scale_ptr, nn, g, n_groups, 1, mask)")),
        "no row mask on the X load (M not a multiple of BLOCK_M)": _w4a16(
            ("mask=(rows[:, None] < M) & (k[None, :] < K), other=0.0)", "mask=k[None, :] < K, other=0.0)")),
        "no N mask on the weight loads": _w4a16(("mask = (kk < K) & (nn < N)", "mask = kk < K")),
        "no K mask on the weight loads (x is 0 there anyway)": _w4a16(("mask = (kk < K) & (nn < N)", "mask = nn < N")),
        "high and low nibble swapped": _w4a16(("(byte >> ((kk % 2) * 4)) & 0xF", "(byte >> ((1 - kk % 2) * 4)) & 0xF")),
        "zero point not subtracted": _w4a16(("(q - zero_point).to(tl.float32)", "q.to(tl.float32)")),
        "scale and zero point of the K tile's first column for the whole tile": _w4a16(
            ("g = kk // group_size", "g = k0 // group_size + kk * 0")),
        "group index k // n_groups": _w4a16(("g = kk // group_size", "g = kk // n_groups")),
        "scale read as [n_groups, N]": _w4a16(("scale_ptr + nn * n_groups + g", "scale_ptr + g * N + nn")),
        "accumulator kept in X's dtype (float16 sums)": _w4a16(
            ("acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)",
             "acc = (acc + tl.dot(x, w, input_precision=DOT_PRECISION)).to(x.dtype)")),
        "each step's product rounded to X's dtype before it is added": _w4a16(
            ("acc = tl.dot(x, w, acc, input_precision=DOT_PRECISION)",
             "acc += tl.dot(x, w, input_precision=DOT_PRECISION).to(x.dtype)")),
        "K loop steps over tile numbers, not columns": _w4a16(
            head=W4A16_HEAD.replace("k = k0 + tl.arange(0, BLOCK_K)", "k = k0 * BLOCK_K + tl.arange(0, BLOCK_K)")),
        "K loop skips the last partial tile": _w4a16(
            head=W4A16_HEAD.replace("for k0 in range(0, K, BLOCK_K):", "for k0 in range(0, K - BLOCK_K + 1, BLOCK_K):")),
        "weight tile always the first K tile": _w4a16(("kk, nn = k[:, None], cols[None, :]",
                                                       "kk, nn = tl.arange(0, BLOCK_K)[:, None], cols[None, :]")),
        "X rows K apart instead of stride_xm": _w4a16(("rows[:, None] * stride_xm", "rows[:, None] * K")),
    },
    "launch_grid": {
        "reference call": '''from course_lib.kernels import launch


def launch_grid(M, N, K, block_m, block_n, block_k, split_k):
    return launch.split_k_grid(M, N, K, block_m, block_n, block_k, split_k)
''',
        "floor division for the output tiles": LAUNCH_GRID + '''    tiles = (M // block_m) * (N // block_n)
    return (tiles, split_k), triton.cdiv(triton.cdiv(K, block_k), split_k)
''',
        "floor division of the K tiles between slices": LAUNCH_GRID + '''    tiles = triton.cdiv(M, block_m) * triton.cdiv(N, block_n)
    return (tiles, split_k), triton.cdiv(K, block_k) // split_k
''',
        "every slice gets all the K tiles": LAUNCH_GRID + '''    tiles = triton.cdiv(M, block_m) * triton.cdiv(N, block_n)
    return (tiles, split_k), triton.cdiv(K, block_k)
''',
        "block_m and block_n swapped": LAUNCH_GRID + '''    tiles = triton.cdiv(M, block_n) * triton.cdiv(N, block_m)
    return (tiles, split_k), triton.cdiv(triton.cdiv(K, block_k), split_k)
''',
        "tiles counted from the element count": LAUNCH_GRID + '''    tiles = triton.cdiv(M * N, block_m * block_n)
    return (tiles, split_k), triton.cdiv(triton.cdiv(K, block_k), split_k)
''',
        "a three-axis grid": LAUNCH_GRID + '''    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n), split_k)
    return grid, triton.cdiv(triton.cdiv(K, block_k), split_k)
''',
        "true division (floats)": LAUNCH_GRID + '''    import math
    tiles = math.ceil(M / block_m) * math.ceil(N / block_n)
    return (tiles, split_k), math.ceil(K / block_k) / split_k
''',
    },
    "tile_of_program": {
        "reference call": '''from course_lib.kernels import launch


def tile_of_program(pid, M, N, block_m, block_n, group_m):
    return launch.tile_coordinates_reference(pid, M, N, block_m, block_n, group_m)
''',
        "the library's jit tile_coordinates, called from Python": '''from course_lib.kernels import launch


def tile_of_program(pid, M, N, block_m, block_n, group_m):
    pid_m, pid_n = launch.tile_coordinates(pid, M, N, block_m, block_n, group_m)
    return int(pid_m), int(pid_n)
''',
        "row by row, group_m ignored": TILE + '''    tiles_n = triton.cdiv(N, block_n)
    return pid // tiles_n, pid % tiles_n
''',
        "every band group_m rows high (no min for the last one)": TILE + '''    tiles_n = triton.cdiv(N, block_n)
    width = group_m * tiles_n
    first_m = (pid // width) * group_m
    return first_m + (pid % width) % group_m, (pid % width) // group_m
''',
        "floor division for the tile counts": TILE + '''    tiles_m, tiles_n = M // block_m, N // block_n
    width = group_m * tiles_n
    first_m = (pid // width) * group_m
    rows = min(tiles_m - first_m, group_m)
    return first_m + (pid % width) % rows, (pid % width) // rows
''',
        "across the band's row first (% and // swapped)": TILE + '''    tiles_m, tiles_n = triton.cdiv(M, block_m), triton.cdiv(N, block_n)
    width = group_m * tiles_n
    first_m = (pid // width) * group_m
    rows = min(tiles_m - first_m, group_m)
    return first_m + (pid % width) // tiles_n, (pid % width) % tiles_n
''',
        "band index not multiplied by group_m": TILE + '''    tiles_m, tiles_n = triton.cdiv(M, block_m), triton.cdiv(N, block_n)
    width = group_m * tiles_n
    first_m = pid // width
    rows = min(tiles_m - first_m, group_m)
    return first_m + (pid % width) % rows, (pid % width) // rows
''',
        "band width from the row tiles": TILE + '''    tiles_m, tiles_n = triton.cdiv(M, block_m), triton.cdiv(N, block_n)
    width = group_m * tiles_m
    first_m = (pid // width) * group_m
    rows = min(tiles_m - first_m, group_m)
    return first_m + (pid % width) % rows, (pid % width) // rows
''',
    },
}
