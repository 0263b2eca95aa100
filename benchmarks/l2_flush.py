"""How the L2 flush of the timing harness weighs on M = 1 products: do_bench's (zeroing 256 MB: L2 left full of dirty
lines that the timed kernel must write back as it evicts them) against a read flush (L2 left full of clean lines, as
after the previous layer's weights in a decode step)."""
import sys, statistics, torch
sys.path.insert(0, "benchmarks")  # run from the repository root
from kernels import import_kernels, make_w4, make_w8, to_torch_int4, DEVICE
kernels = import_kernels()
from course_lib.kernels import gemv_rows
from course_lib.kernels.launch import Config
import triton

@triton.jit
def empty_kernel(Y):
    pass

cache = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device=DEVICE)
sink = torch.empty((), dtype=torch.int64, device=DEVICE)
def flush(mode):
    if mode == "write":
        cache.zero_()
    elif mode == "read":
        torch.sum(cache, dim=(0,), out=sink)

def time_graph(fn, mode, reps=200):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    for _ in range(10):
        flush(mode); g.replay()
    times = []
    for _ in range(reps):
        flush(mode)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record()
        times.append((a, b))
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in times) * 1e3

gen = torch.Generator(device=DEVICE).manual_seed(0)
print(torch.cuda.get_device_name(), flush=True)
for K, N in [(4096, 4096), (4096, 11008), (11008, 4096), (8192, 8192)]:
    w4 = make_w4(N, K, 128, gen); w8 = make_w8(N, K, gen)
    int4 = to_torch_int4(w4, 128)
    X = torch.randn(1, K, generator=gen, device=DEVICE).half()
    W16 = w4["W_hat"].half()
    out = torch.empty(1, N, device=DEVICE, dtype=torch.half)
    y = torch.empty(1, device=DEVICE)
    fns = {
        "empty": lambda: empty_kernel[(1,)](y),
        "fp16": lambda: torch.matmul(X, W16.T),
        "torch-int4": lambda: torch.ops.aten._weight_int4pack_mm(X.bfloat16(), int4[0], 128, int4[1]),
        "W4A16 (v6)": lambda: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"]),
        "W4 rows r4w2p4": lambda: gemv_rows.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out, 4, 128,
                                                  Config(block_n=4, block_k=2048, unroll=16, num_warps=2), per_thread=4),
        "W4 rows r2w1p4": lambda: gemv_rows.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out, 4, 128,
                                                  Config(block_n=2, block_k=1024, unroll=16, num_warps=1), per_thread=4),
        "W4 rows r4w2p8": lambda: gemv_rows.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out, 4, 128,
                                                  Config(block_n=4, block_k=4096, unroll=16, num_warps=2), per_thread=8),
        "W4 rows r4w1p8": lambda: gemv_rows.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out, 4, 128,
                                                  Config(block_n=4, block_k=2048, unroll=16, num_warps=1), per_thread=8),
        "W8A16 (v5)": lambda: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"]),
        "W8 rows r2w1p1": lambda: gemv_rows.launch(X, w8["qweight"], w8["scale"], None, None, out, 8, K,
                                                  Config(block_n=2, block_k=128, unroll=32, num_warps=1), per_thread=1),
        "W8 rows r4w1p4": lambda: gemv_rows.launch(X, w8["qweight"], w8["scale"], None, None, out, 8, K,
                                                  Config(block_n=4, block_k=512, unroll=32, num_warps=1), per_thread=4),
    }
    res = {name: {m: time_graph(f, m) for m in ("write", "read", "none")} for name, f in fns.items()}
    print(f"K={K} N={N}  (graph replay us: write-flush / read-flush / no flush; x fp16 per flush)", flush=True)
    for name, r in res.items():
        print(f"  {name:16s} {r['write']:6.1f} {r['read']:6.1f} {r['none']:6.1f}   x {res['fp16']['write'] / r['write']:.2f}"
              f" / {res['fp16']['read'] / r['read']:.2f} / {res['fp16']['none'] / r['none']:.2f}", flush=True)
