"""How the timer's L2 flush weighs on one-token (M = 1) products: a write flush against a read flush.

    python benchmarks/l2_flush.py --json benchmarks/results/<card>-<date>-l2-flush.json

``triton.testing.do_bench`` (and so ``benchmarks/kernel_speed.py``) empties the L2 before each run by writing zeros
over 256 MB: the timed product starts with an L2 full of *dirty* lines, which it writes back to memory as it
evicts them. Before a layer's product in a model the L2 holds the previous layer's weights, *clean* lines,
evicted for free; a read flush (summing the same 256 MB) leaves it that way. This script times each product as a
CUDA-graph replay (the GPU time, no Python launch) after each kind of flush, next to a Triton kernel that does
nothing (the floor under every time), on the four shapes of ``benchmarks/kernel_speed.py``. Every product is checked
against a float32 product with its dequantized weight before it is timed. Notebook 09 reads the JSON (a copy
beside it, in solutions/09_triton_kernels/).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import date
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_speed import DEVICE, SHAPES, candidates, capture_graph, check_product, import_kernels  # noqa: E402

FLUSH_BYTES = 256 * 1024 * 1024  # as triton.testing.do_bench
PRODUCTS = {  # label in the JSON -> name in kernel_speed.candidates (the defaults at M = 1)
    "fp16": "fp16", "torch-int4": "torch-int4", "W4A16 (v6)": "W4A16-v6", "W8A16 (v5)": "W8A16-v5"}


@triton.jit
def empty_kernel(Y_ptr):
    pass


def time_graph(fn, flush, reps: int) -> float:
    """Median microseconds of one CUDA-graph replay of fn(), each replay after flush()."""
    graph = capture_graph(fn)
    for _ in range(10):
        flush()
        graph.replay()
    events = []
    for _ in range(reps):
        flush()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events) * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="timed replays per product and flush")
    parser.add_argument("--json", type=Path, help="write the rows (notebook 09's layout) here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/l2_flush.py needs a CUDA GPU.")
    kernels = import_kernels()
    cache = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=DEVICE)
    total = torch.empty((), dtype=torch.int64, device=DEVICE)
    flushes = {"write": cache.zero_, "read": lambda: torch.sum(cache, dim=0, out=total)}
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    card = torch.cuda.get_device_name()
    print(f"{card}, {date.today()}: M = 1, CUDA-graph us after a write / a read flush (x FP16 after each)", flush=True)
    rows = []
    for K, N in SHAPES:
        fns, _ = candidates(K, N, 128, kernels, gen)
        X = torch.randn(1, K, generator=gen, device=DEVICE).half()
        nothing = torch.empty(1, device=DEVICE)
        calls = {"empty": lambda: empty_kernel[(1,)](nothing)}
        for label, name in PRODUCTS.items():
            if name not in fns:
                print(f"  {label} unavailable on this machine; left out", flush=True)
                continue
            _, fn, W_hat = fns[name]
            check_product(name, fn(X), X, W_hat, f"M=1 K={K} N={N}")
            calls[label] = lambda fn=fn: fn(X)
        times = {label: {mode: time_graph(call, flush, args.reps) for mode, flush in flushes.items()}
                 for label, call in calls.items()}
        print(f"K={K} N={N}", flush=True)
        for label, t in times.items():
            ratio = "" if label == "empty" else (f"   x FP16 {times['fp16']['write'] / t['write']:4.2f} / "
                                                 f"{times['fp16']['read'] / t['read']:4.2f}")
            print(f"  {label:<12} {t['write']:6.1f} / {t['read']:6.1f} us{ratio}", flush=True)
            rows.append(dict(K=K, N=N, kernel=label, us_write_flush=round(t["write"], 2),
                             us_read_flush=round(t["read"], 2)))
        del fns
        torch.cuda.empty_cache()
    if args.json:
        meta = dict(card=card, date=date.today().isoformat(), M=1, torch=torch.__version__, triton=triton.__version__,
                    command="python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
                    timing=f"CUDA-graph replay of one call, median of {args.reps}, after a write flush (zero 256 MB, "
                           "as triton.testing.do_bench) or a read flush (sum 256 MB: the L2 left clean)",
                    kernels={"fp16": "torch.matmul, float16 weight", "torch-int4": "torch.ops.aten._weight_int4pack_mm",
                             "W4A16 (v6)": "w4a16_matmul version 6, group 128, zero points (the default at M = 1)",
                             "W8A16 (v5)": "w8a16_matmul version 5, int8 per channel (the default at M = 1)",
                             "empty": "a Triton kernel that does nothing"})
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
