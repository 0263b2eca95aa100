import os, sys, torch
sys.path.insert(0, "benchmarks")  # run from the repository root
from kernels import import_kernels, make_w4, make_w8, bench_graph, DEVICE
kernels = import_kernels()
from course_lib.kernels import gemv_rows
from course_lib.kernels.launch import Config
import triton, triton.language as tl

@triton.jit
def empty_kernel(Y):
    pass

gen = torch.Generator(device=DEVICE).manual_seed(0)
K = N = 8192
w4 = make_w4(N, K, 128, gen); w8 = make_w8(N, K, gen)
X = torch.randn(1, K, generator=gen, device=DEVICE).half()
out = torch.empty(1, N, device=DEVICE, dtype=torch.half)
c4 = Config(block_n=4, block_k=2048, unroll=16, num_warps=2, num_stages=1)
c8 = Config(block_n=2, block_k=128, unroll=32, num_warps=1, num_stages=1)
f4 = lambda: gemv_rows.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out, 4, 128, c4, per_thread=4)
f6 = lambda: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"])
f8 = lambda: gemv_rows.launch(X, w8["qweight"], w8["scale"], None, None, out, 8, K, c8)
if os.environ.get("PROFILE"):
    for f in (f4, f6): f(); torch.cuda.synchronize()
    W16 = w4["W_hat"].half(); torch.matmul(X, W16.T); torch.cuda.synchronize()
    sys.exit()
y = torch.empty(1, device=DEVICE)
small = torch.randn(1024, 1024, device=DEVICE).half()
W16 = w4["W_hat"].half()
for name, f in [("empty triton kernel", lambda: empty_kernel[(1,)](y)), ("fp16 matmul 1x1024x1024", lambda: torch.matmul(X[:, :1024], small.T)),
                ("fp16 8192^2", lambda: torch.matmul(X, W16.T)), ("rows W4", f4), ("rows W8", f8)]:
    print(f"{name:28s} graph {bench_graph(f, True) * 1e3:7.2f} us", flush=True)
