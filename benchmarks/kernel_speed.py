"""Time the course's Triton kernels against FP16 ``torch.matmul`` and PyTorch's own int4 path, on one GPU.

    python benchmarks/kernel_speed.py --md results/CARD-DATE.md --json results/CARD-DATE.json
    python benchmarks/kernel_speed.py --sweep --graph --only W4A16:1 W8A16:1 --M 1 --best best.json   # try configs
    python benchmarks/kernel_speed.py --configs best.json ...          # time with those instead of the tables

For M in {1, 16, 64, 256, 4096} and (K, N) in {(4096, 4096), (4096, 11008), (11008, 4096),
(8192, 8192)} (Y [M, N] = X [M, K] @ W.T) it times, with ``triton.testing.do_bench``
medians (which flush L2 between runs, so the weight comes from memory as in a model):

    fp16        torch.matmul(X, W.T), W float16                                the baseline
    torch-int4  torch.ops.aten._weight_int4pack_mm, X bfloat16, same groups    PyTorch's int4 path
    W4A16       course_lib.kernels.w4a16_matmul, QuantLinear's packed 4 bits, group 128, zero points
                (and side by side, whichever it picks: for M >= 256 its v1, W4A16-v1; for M >= 4 the
                GEMM v3, W4A16-v3; for M <= 4 the GEMVs v5 and v6, W4A16-v5 and W4A16-v6; for M <= 64 the
                few-rows tensor-core kernel W4A16-v7)
    W8A16       w8a16_matmul, int8 per channel (side by side: for M <= 4 the GEMV v4, W8A16-v4; for
                16 <= M <= 64 the GEMM v2, W8A16-v2; for M <= 64 the few-rows kernel, W8A16-v5)
    W8A8        w8a8_linear (quantize X per token + int8 GEMM); "W8A8-gemm": X already quantized

each twice: *eager* (one Python call per run) and *graph* (a CUDA-graph replay of that call,
the GPU time without Python's launch overhead). For each: the speed-up over fp16 and over
torch-int4, and the effective bandwidth: the fewest bytes the product must move (weight,
its scales and zero points, X, Y) over the graph time, next to a device-to-device copy
measured in the same run (read + write bytes over time). Every kernel's output is checked
against a float32 product with the dequantized weight before it is timed.

Needs only torch, triton and this checkout: when ``course_lib.kernels`` is not installed
(a GPU machine with the bare repository), ``import_kernels`` maps ``kernels/`` under
``course_lib`` by hand, as the package-dir mapping of an installed wheel would.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from datetime import date
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

REPO = Path(__file__).resolve().parent.parent
DEVICE = "cuda"
MS = [1, 16, 64, 256, 4096]
SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096), (8192, 8192)]
SWEEP_SHAPES = [(4096, 4096), (8192, 8192)]
TARGETS = "W4A16 M=1: >= 3.0x fp16 on 8192^2 and >= torch-int4 everywhere; W4A16 M=16: >= 2.5x; " \
          "W8A16 M=1: >= 1.8x; W8A8 M=4096: >= 1.5x"



def portable(args: list[str]) -> list[str]:
    """The command's words without the machine's folders: absolute paths (an $OUT folder, say) by file name."""
    return [os.path.basename(a) if os.path.isabs(a) else a for a in args]

def import_kernels():
    """``course_lib.kernels``, installed or straight from this checkout (``kernels/`` mapped under course_lib)."""
    try:
        import course_lib.kernels as kernels
        return kernels
    except ModuleNotFoundError:
        sys.path.insert(0, str(REPO))  # course_lib itself
        spec = importlib.util.spec_from_file_location("course_lib.kernels", REPO / "kernels" / "__init__.py",
                                                      submodule_search_locations=[str(REPO / "kernels")])
        module = importlib.util.module_from_spec(spec)
        sys.modules["course_lib.kernels"] = module
        spec.loader.exec_module(module)
        return module


def bench(fn, quick: bool = False) -> float:
    """Median milliseconds of fn() (do_bench: events, L2 flushed before each run)."""
    return do_bench(fn, warmup=10 if quick else 25, rep=40 if quick else 100, return_mode="median")


def capture_graph(fn) -> torch.cuda.CUDAGraph:
    """fn() captured as a CUDA graph (run once first, off the default stream, as capture requires)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm the allocator off the default stream
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def bench_graph(fn, quick: bool = False) -> float:
    """Median milliseconds of one CUDA-graph replay of fn(): the GPU time without Python's launch overhead."""
    graph = capture_graph(fn)
    ms = bench(graph.replay, quick)
    del graph
    return ms


def rel_error(Y, ref) -> float:
    return ((Y.float() - ref).norm() / ref.norm()).item()


def check_product(name: str, Y, X, W_hat, where: str) -> float:
    """Relative error of Y against X @ W_hat.T in float32; raises if over the limit for that kind of product."""
    error = rel_error(Y, X.float() @ W_hat.T)
    limit = 3e-2 if name in ("torch-int4", "W8A8", "W8A8-gemm") else 5e-3  # bf16 input / int8 activations
    if not error < limit:
        raise AssertionError(f"{name} {where}: relative error {error:.2e} >= {limit}")
    return error


# ------------------------------------------------------------------ random weights in each format

def make_w4(N: int, K: int, group_size: int, gen) -> dict:
    """QuantLinear's 4-bit asymmetric layout with random codes, scales and zero points."""
    n_groups = K // group_size
    q = torch.randint(0, 16, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8)
    zero = torch.randint(0, 16, (N, n_groups), generator=gen, device=DEVICE, dtype=torch.uint8)
    scale = (torch.rand(N, n_groups, generator=gen, device=DEVICE) * 0.02 + 0.005).half()
    pack = lambda codes: codes[..., 0::2] | (codes[..., 1::2] << 4)  # low nibble = even index (pack_bits)  # noqa
    g = torch.arange(K, device=DEVICE) // group_size
    W_hat = (q.float() - zero.float()[:, g]) * scale.float()[:, g]  # [N, K]
    return dict(q=q, zero=zero, scale=scale, W_hat=W_hat, qweight=pack(q), zero_point=pack(zero.reshape(-1)))


def to_torch_int4(w4: dict, group_size: int):
    """The same weight for ``_weight_int4pack_mm(X_bf16, packed, group_size, scales_and_zeros)``, or None.

    torch computes W = (q - 8) * scale + offset, so offset = (8 - zero_point) * scale; its
    scales_and_zeros is [n_groups, N, 2] bfloat16, and ``_convert_weight_to_int4pack(w, 8)``
    (innerKTiles = 8) takes [N, K / 2] uint8 with the even index in the high nibble. The
    result is checked against W_hat (the other nibble order is tried if it is wrong).
    """
    q = w4["q"].int()
    scale = w4["scale"].float()
    offset = (8 - w4["zero"].float()) * scale
    scales_and_zeros = torch.stack([scale, offset], dim=-1).transpose(0, 1).contiguous().bfloat16()  # [groups, N, 2]
    X = torch.randn(4, q.shape[1], device=DEVICE)
    for high, low in [(q[:, 0::2], q[:, 1::2]), (q[:, 1::2], q[:, 0::2])]:
        try:
            packed = torch.ops.aten._convert_weight_to_int4pack(((high << 4) | low).to(torch.uint8), 8)
            Y = torch.ops.aten._weight_int4pack_mm(X.bfloat16(), packed, group_size, scales_and_zeros)
        except RuntimeError as err:
            print(f"torch int4 path unavailable: {err}".splitlines()[0], flush=True)
            return None
        if rel_error(Y, X @ w4["W_hat"].T) < 2e-2:
            return packed, scales_and_zeros
    print("torch int4 path gives wrong results with both nibble orders; left out", flush=True)
    return None


def make_w8(N: int, K: int, gen) -> dict:
    q = torch.randint(-127, 128, (N, K), generator=gen, device=DEVICE, dtype=torch.int8)
    scale = (torch.rand(N, 1, generator=gen, device=DEVICE) * 0.01 + 0.001).half()
    return dict(qweight=q, scale=scale, W_hat=q.float() * scale.float())


def copy_bandwidth(quick: bool) -> float:
    """GB/s of a 1 GiB device-to-device copy, counting the bytes read and written."""
    src = torch.randn(1 << 28, device=DEVICE)  # 1 GiB of float32
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src), quick)
    return 2 * src.numel() * 4 / ms / 1e6


# ------------------------------------------------------------------ one shape

def candidates(K: int, N: int, group_size: int, kernels, gen, configs: dict | None = None) -> tuple[dict, dict]:
    """Per kernel name: (bytes that must move per run minus X and Y, fn(X) -> Y, reference weight).

    configs: optional {"W4A16:16": {Config fields}, ...} used instead of the tables for that kernel and M.
    """
    configs = configs or {}
    pick = lambda kind, X: configs.get(f"{kind}:{X.shape[0]}")  # noqa: E731
    w4, w8 = make_w4(N, K, group_size, gen), make_w8(N, K, gen)
    W16 = (w4["W_hat"]).half()  # the fp16 baseline multiplies the same values
    int4 = to_torch_int4(w4, group_size)
    w4_bytes = N * K // 2 + N * (K // group_size) * 2 + N * (K // group_size) // 2
    w8_bytes = N * K + N * 2
    fns = {
        "fp16": (N * K * 2, lambda X: torch.matmul(X, W16.T), w4["W_hat"]),
        "torch-int4": (w4_bytes, lambda X: torch.ops.aten._weight_int4pack_mm(X.bfloat16(), int4[0], group_size,
                                                                              int4[1]), w4["W_hat"]),
        "W4A16": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                           config=as_config(pick("W4A16", X))), w4["W_hat"]),
        "W8A16": (w8_bytes, lambda X: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"],
                                                           config=as_config(pick("W8A16", X))), w8["W_hat"]),
        "W8A8": (w8_bytes, lambda X: kernels.w8a8_linear(X, w8["qweight"], w8["scale"],
                                                         config=as_config(pick("W8A8", X))), w8["W_hat"]),
        # the two W4A16 paths for large M, side by side (the table above uses one of them)
        "W4A16-v1": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                              version=1), w4["W_hat"]),
        "W4A16-v3": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                              version=3), w4["W_hat"]),
        # the two newest W4A16 GEMVs side by side at M <= 4 (v6: float16x2 inline PTX; its config from
        # --configs as "W4A16-v6:M", else its table)
        "W4A16-v5": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                              version=5), w4["W_hat"]),
        "W4A16-v6": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                              version=6, config=as_config(pick("W4A16-v6", X))),
                     w4["W_hat"]),
        "W8A16-v4": (w8_bytes, lambda X: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"], version=4), w8["W_hat"]),
        "W8A16-v2": (w8_bytes, lambda X: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"], version=2), w8["W_hat"]),
        # the few-rows tensor-core kernels (kernels/few_rows.py) next to what the wrappers pick, M <= 64
        "W4A16-v7": (w4_bytes, lambda X: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                              version=7, config=as_config(pick("W4A16-v7", X))),
                     w4["W_hat"]),
        "W8A16-v5": (w8_bytes, lambda X: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"], version=5,
                                                              config=as_config(pick("W8A16-v5", X))), w8["W_hat"]),
    }
    if int4 is None:
        del fns["torch-int4"]
    return fns, dict(w4=w4, w8=w8)


def as_config(fields: dict | None):
    from course_lib.kernels.launch import Config
    return None if fields is None else Config(**fields)


def run_shape(M: int, K: int, N: int, fns: dict, weights: dict, kernels, quick: bool, copy_gbps: float) -> list:
    """Check, then time each kernel twice: eager (a Python call per run) and as a CUDA-graph replay."""
    gen = torch.Generator(device=DEVICE).manual_seed(M * 7 + K + N)
    X = torch.randn(M, K, generator=gen, device=DEVICE).half()
    w8 = weights["w8"]
    q_x, scale_x = kernels.quantize_per_token(X)
    side_by_side = {"W4A16-v1": M >= 256, "W4A16-v3": M >= 4, "W8A16-v4": M <= 4,
                    "W8A16-v2": 16 <= M <= 64, "W4A16-v5": M <= 4, "W4A16-v6": M <= 4, "W4A16-v7": M <= 64,
                    "W8A16-v5": M <= 64}
    fns = {name: entry for name, entry in fns.items() if side_by_side.get(name, True)}
    fns["W8A8-gemm"] = (N * K + N * 2 + M * K + M * 4 - M * K * 2,  # q_x and scale_x instead of X
                        lambda X: kernels.w8a8_matmul(q_x, scale_x, w8["qweight"], w8["scale"]), w8["W_hat"])
    rows = []
    for name, (weight_bytes, fn, W_hat) in fns.items():
        error = check_product(name, fn(X), X, W_hat, f"M={M} K={K} N={N}")
        eager, graph = bench(lambda: fn(X), quick), bench_graph(lambda: fn(X), quick)
        moved = weight_bytes + M * K * 2 + M * N * 2
        rows.append(dict(M=M, K=K, N=N, kernel=name, ms=eager, ms_graph=graph, rel_error=error,
                         GBps=moved / graph / 1e6, TFLOPs=2 * M * N * K / graph / 1e9))
    base = {row["kernel"]: row for row in rows}
    for row in rows:
        row["x_fp16"] = base["fp16"]["ms"] / row["ms"]
        row["x_fp16_graph"] = base["fp16"]["ms_graph"] / row["ms_graph"]
        int4 = base.get("torch-int4")
        row["x_int4"] = int4["ms"] / row["ms"] if int4 else float("nan")
        row["x_int4_graph"] = int4["ms_graph"] / row["ms_graph"] if int4 else float("nan")
        row["pct_copy_bw"] = 100 * row["GBps"] / copy_gbps
    return rows


# ------------------------------------------------------------------ sweep: try launch configs

def sweep_configs(kind: str, M: int):
    from course_lib.kernels.launch import Config
    if kind == "W4A16-v6" and M <= 4:  # GEMV v6: as v5; num_stages 2 = the next step's loads issued by hand
        return [Config(block_n=bn, block_k=bk, num_warps=w, num_stages=st, unroll=16)
                for bn, bk, w in ((8, 1024, 4), (4, 1024, 2), (8, 512, 2), (16, 512, 4), (4, 512, 4), (4, 1024, 4))
                for st in (1, 2)]
    if kind in ("W4A16-v7", "W8A16-v5"):  # few rows: block_k = codes per K step (W4: at most the group)
        # unroll 2: the next K step's loads issued by hand (few_rows PREFETCH); num_stages: Triton's pipeliner
        return [Config(block_m=16, block_n=bn, block_k=128, split_k=s, num_warps=4, num_stages=st, unroll=u)
                for bn in (32, 64, 128) for s in (2, 4, 8, 16) for u, st in ((1, 3), (2, 1), (2, 3))
                if bn * s <= 1024]
    if kind == "W4A16" and M <= 4:  # GEMV v5: block_k = codes per K step, unroll = the most words in a chunk
        return [Config(block_n=bn, block_k=bk, num_warps=w, num_stages=1, unroll=16)
                for bn in (4, 8, 16, 32) for bk in (512, 1024, 2048) for w in (2, 4, 8)]
    if kind == "W8A16" and M <= 4:  # GEMV v4: block_k = codes per K step
        return [Config(block_n=bn, block_k=bk, num_warps=w, num_stages=1)
                for bn in (4, 8, 16, 32) for bk in (256, 512, 1024) for w in (2, 4, 8)]
    if M <= 16:
        return [Config(block_m=16, block_n=bn, block_k=bk, split_k=s, num_warps=4, num_stages=4)
                for bn in (32, 64, 128) for bk in (64, 128) for s in (1, 2, 4, 8)]
    if M <= 64:
        return [Config(block_m=bm, block_n=bn, block_k=128, split_k=s, num_warps=4, num_stages=4)
                for bm in (32, 64) for bn in (64, 128) for s in (1, 2, 4)]
    if M <= 256:
        return [Config(block_m=bm, block_n=bn, block_k=bk, split_k=1, num_warps=w, num_stages=4)
                for bm in (64, 128) for bn in (64, 128) for bk in (64, 128) for w in (4, 8)]
    return [Config(block_m=128, block_n=bn, block_k=bk, split_k=1, num_warps=w, num_stages=st)
            for bn in (128, 256) for bk in (64, 128) for w in (4, 8) for st in (3, 4)]


def sweep(args, kernels) -> list:
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    timer = bench_graph if args.graph else bench
    only = set(args.only or [])
    results = []
    for K, N in (SHAPES if args.all_shapes else SWEEP_SHAPES):
        fns, weights = candidates(K, N, args.group_size, kernels, gen)
        w4, w8 = weights["w4"], weights["w8"]
        for M in args.M:
            X = torch.randn(M, K, generator=gen, device=DEVICE).half()
            for name in ("fp16", "torch-int4"):
                if name in fns:
                    ms = timer(lambda: fns[name][1](X), quick=True)
                    results.append(dict(kind=name, M=M, K=K, N=N, config=None, ms=ms))
                    print(f"base {name:10s} M={M:5d} K={K:5d} N={N:5d} {ms * 1e3:8.1f} us", flush=True)
            q_x, scale_x = kernels.quantize_per_token(X)
            calls = {
                "W4A16": lambda c: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"], config=c),
                "W4A16-v6": lambda c: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                           version=6, config=c),
                "W8A16": lambda c: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"], config=c),
                "W8A8": lambda c: kernels.w8a8_matmul(q_x, scale_x, w8["qweight"], w8["scale"], config=c),
                "W4A16-v7": lambda c: kernels.w4a16_matmul(X, w4["qweight"], w4["scale"], w4["zero_point"],
                                                           version=7, config=c),
                "W8A16-v5": lambda c: kernels.w8a16_matmul(X, w8["qweight"], w8["scale"], version=5, config=c),
            }
            W_hat = {"W4A16": w4["W_hat"], "W4A16-v6": w4["W_hat"], "W4A16-v7": w4["W_hat"], "W8A16": w8["W_hat"],
                     "W8A16-v5": w8["W_hat"]}
            for kind, call in calls.items():
                skip = (kind == "W8A8" and M < 64) or (kind == "W4A16-v6" and M > 4) or (kind in ("W4A16-v7",
                        "W8A16-v5") and M > 64)
                if skip or (only and f"{kind}:{M}" not in only):
                    continue
                for config in sweep_configs(kind, M):
                    try:
                        error = rel_error(call(config), X.float() @ W_hat[kind].T) if kind in W_hat else 0.0
                        ms = timer(lambda: call(config), quick=True)
                    except Exception as err:  # noqa: BLE001 -- a config too large for shared memory: skip it
                        print(f"skip {kind} M={M} {config}: {type(err).__name__}", flush=True)
                        continue
                    if not error < 5e-3:
                        raise AssertionError(f"{kind} M={M} K={K} N={N} {config}: relative error {error:.2e}")
                    results.append(dict(kind=kind, M=M, K=K, N=N, config=config.__dict__, ms=ms))
                    if args.verbose:
                        print(f"  {kind} M={M} K={K} N={N} {ms * 1e3:8.1f} us {config}", flush=True)
                tried = [r for r in results if r["kind"] == kind and r["M"] == M and (r["K"], r["N"]) == (K, N)]
                if tried:
                    best = min(tried, key=lambda r: r["ms"])
                    print(f"best {kind:6s} M={M:5d} K={K:5d} N={N:5d} {best['ms'] * 1e3:8.1f} us {best['config']}",
                          flush=True)
    return results


def best_configs(results: list) -> dict:
    """{"KIND:M": config} with the best geometric-mean time over the swept shapes."""
    scores = {}
    for r in results:
        if r["config"] is not None:
            key = (f"{r['kind']}:{r['M']}", json.dumps(r["config"], sort_keys=True))
            scores.setdefault(key, []).append(r["ms"])
    n_shapes = max(len(v) for v in scores.values())
    best = {}
    for (name, config), times in scores.items():
        if len(times) == n_shapes:
            score = torch.tensor(times).log().mean().exp().item()
            if name not in best or score < best[name][0]:
                best[name] = (score, json.loads(config))
    return {name: config for name, (score, config) in best.items()}


# ------------------------------------------------------------------ report

def markdown(rows: list, meta: dict) -> str:
    lines = [f"# Kernel benchmark: {meta['card']}, {meta['date']}", "",
             f"Command: `{meta['command']}`  ", f"torch {meta['torch']}, triton {meta['triton']}, "
             f"CUDA {meta['cuda']}, group size {meta['group_size']} (W4), X float16 (bfloat16 for torch-int4)  ",
             f"Copy bandwidth (1 GiB device-to-device, read + write): {meta['copy_GBps']:.0f} GB/s  ",
             f"Launch configs overridden from the tables: {meta['configs'] or 'none'}", "",
             "Times are `triton.testing.do_bench` medians, L2 flushed between runs. *eager*: one Python call per "
             "run (includes the launch overhead, which Triton's Python launcher makes larger than cuBLAS's); "
             "*graph*: a CUDA-graph replay of the same call (GPU time). x fp16 = fp16 time / kernel time in the "
             "same mode; GB/s = fewest bytes moved (weight + scales + zero points + X + Y) / graph time.", "",
             f"Targets (issue 8): {TARGETS}", "",
             "| M | K | N | kernel | eager us | x fp16 | graph us | x fp16 | x torch-int4 | GB/s | % copy BW "
             "| TFLOP/s |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['M']} | {r['K']} | {r['N']} | {r['kernel']} | {r['ms'] * 1e3:.1f} | {r['x_fp16']:.2f} | "
                     f"{r['ms_graph'] * 1e3:.1f} | {r['x_fp16_graph']:.2f} | {r['x_int4_graph']:.2f} | "
                     f"{r['GBps']:.0f} | {r['pct_copy_bw']:.0f} | {r['TFLOPs']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--M", type=int, nargs="+", default=MS)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="shorter timing loops")
    parser.add_argument("--sweep", action="store_true", help="try launch configs instead of the tables")
    parser.add_argument("--graph", action="store_true", help="sweep: time CUDA-graph replays (GPU time)")
    parser.add_argument("--only", nargs="+", help="sweep: only these KIND:M, e.g. W4A16:1 W8A16:1")
    parser.add_argument("--all-shapes", action="store_true", help="sweep: the four table shapes, not two")
    parser.add_argument("--verbose", action="store_true", help="sweep: print every config's time")
    parser.add_argument("--best", type=Path, help="sweep: write the best config per KIND:M here (for --configs)")
    parser.add_argument("--configs", type=Path, help="use these configs (from --best) instead of the tables")
    parser.add_argument("--md", type=Path, help="write the table as markdown here")
    parser.add_argument("--json", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernel_speed.py needs a CUDA GPU; the kernels' CPU tests are tests/test_kernels.py.")
    kernels = import_kernels()
    meta = dict(card=torch.cuda.get_device_name(), date=date.today().isoformat(), torch=torch.__version__,
                triton=triton.__version__, cuda=torch.version.cuda, group_size=args.group_size,
                command="python " + " ".join(portable([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))))
    meta["commands"] = [meta["command"]]  # notebook 09 prints this list
    if args.sweep:
        meta["graph"] = args.graph
        results = sweep(args, kernels)
        if args.json:
            args.json.write_text(json.dumps(dict(meta=meta, sweep=results), indent=1))
        if args.best:
            args.best.write_text(json.dumps(best_configs(results), indent=1))
            print("best configs:", args.best.read_text())
        return
    meta["configs"] = json.loads(args.configs.read_text()) if args.configs else {}
    meta["copy_GBps"] = copy_bandwidth(args.quick)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    rows = []
    for K, N in SHAPES:
        fns, weights = candidates(K, N, args.group_size, kernels, gen, meta["configs"])
        for M in args.M:
            new = run_shape(M, K, N, fns, weights, kernels, args.quick, meta["copy_GBps"])
            rows += new
            for r in new:
                print(f"M={M:5d} K={K:5d} N={N:5d} {r['kernel']:10s} eager {r['ms'] * 1e3:8.1f} us x{r['x_fp16']:5.2f}"
                      f" | graph {r['ms_graph'] * 1e3:8.1f} us x{r['x_fp16_graph']:5.2f} int4 x{r['x_int4_graph']:5.2f}"
                      f" {r['GBps']:6.0f} GB/s {r['TFLOPs']:6.1f} TFLOP/s", flush=True)
        del fns, weights
        torch.cuda.empty_cache()
    table = markdown(rows, meta)
    print(table)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))


if __name__ == "__main__":
    main()
