"""Sweep kernels/gemv_rows.py (W4A16 v8 / W8A16 v6 candidates) at M = 1 against fp16 and the current defaults.

    python benchmarks/gemv_rows_sweep.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import DEVICE, SHAPES, bench_graph, candidates, copy_bandwidth, import_kernels, rel_error  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rows", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--warps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--per-thread", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--stages", type=int, nargs="+", default=[1])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--lop3", type=int, nargs="+", default=[0])
    parser.add_argument("--shapes", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    kernels = import_kernels()
    from course_lib.kernels import gemv_rows
    from course_lib.kernels.launch import Config
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    # correctness of the PTX path on ragged shapes (masks) and even ones, both widths, sym / asym
    for (N, K, group) in [(37, 1024 + 64, 64), (64, 2048, 128), (13, 200, 8)]:
        X = torch.randn(1, K, generator=gen, device=DEVICE).half()
        q = torch.randint(0, 16, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8)
        G = K // group
        z = torch.randint(0, 16, (N, G), generator=gen, device=DEVICE, dtype=torch.uint8)
        s = (torch.rand(N, G, generator=gen, device=DEVICE) * 0.02 + 0.005).half()
        pack = lambda c: c[..., 0::2] | (c[..., 1::2] << 4)  # noqa
        zf = z.reshape(-1)
        zp = pack(torch.cat([zf, zf.new_zeros(zf.numel() % 2)]))
        bias = torch.randn(N, generator=gen, device=DEVICE).half()
        for sym in (True, False):
            ref = kernels.w4a16_reference(X, pack(q), s, None if sym else zp, None, bias).float()
            for rows in (1, 2, 4, 8):
                for bk, st in ((256, 1), (1024, 2), (256, 4), (1024, 4)):
                    out = torch.full((1, N), float("nan"), device=DEVICE, dtype=torch.half)
                    gemv_rows.launch(X, pack(q), s, None if sym else zp, bias, out, 4, group,
                                     Config(block_n=rows, block_k=bk, unroll=16, num_warps=2), per_thread=st)
                    e = rel_error(out, ref)
                    assert e < 5e-3, (N, K, group, sym, rows, bk, e)
                    out.fill_(float("nan"))
                    gemv_rows.launch(X, pack(q), s, None if sym else zp, bias, out, 4, group,
                                     Config(block_n=rows, block_k=bk, unroll=16, num_warps=2), per_thread=st, lop3=True)
                    e = rel_error(out, ref)
                    assert e < 5e-3, ("lop3", N, K, group, sym, rows, bk, e)
            q8 = (torch.randint(-127, 128, (N, K), generator=gen, device=DEVICE, dtype=torch.int8) if sym else
                  torch.randint(0, 256, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8))
            z8 = None if sym else torch.randint(0, 256, (N,), generator=gen, device=DEVICE, dtype=torch.uint8)
            s8 = (torch.rand(N, 1, generator=gen, device=DEVICE) * 0.01 + 0.001).half()
            ref = kernels.w8a16_reference(X, q8, s8, z8, bias).float()
            for rows in (1, 2, 4, 8):
                for bk, st in ((256, 1), (1024, 2), (256, 4), (1024, 4)):
                    out = torch.full((1, N), float("nan"), device=DEVICE, dtype=torch.half)
                    gemv_rows.launch(X, q8, s8, z8, bias, out, 8, K, Config(block_n=rows, block_k=bk, unroll=32,
                                                                            num_warps=2), per_thread=st)
                    e = rel_error(out, ref)
                    assert e < 5e-3, ("W8", N, K, sym, rows, bk, e)
    print("PTX path correct on ragged and even shapes (W4 sym/asym, W8 sym/asym, rows 1-8)", flush=True)
    copy = copy_bandwidth(True)
    print(f"copy bandwidth {copy:.0f} GB/s", flush=True)
    results = []
    for si in args.shapes:
        K, N = SHAPES[si]
        fns, weights = candidates(K, N, 128, kernels, gen)
        w4, w8 = weights["w4"], weights["w8"]
        X = torch.randn(1, K, generator=gen, device=DEVICE).half()
        base = {}
        for name in ("fp16", "torch-int4", "W4A16", "W8A16", "W8A16-v4"):
            if name in fns:
                fn = fns[name][1]
                base[name] = bench_graph(lambda: fn(X), True) * 1e3
        print(f"K={K} N={N} " + " ".join(f"{k} {v:.1f}" for k, v in base.items()), flush=True)
        results.append(dict(K=K, N=N, kind="base", us=base))
        for bits in args.bits:
            w = w4 if bits == 4 else w8
            best = None
            for rows in args.rows:
                for warps in args.warps:
                    for pt, st, lop3 in [(pt, st, lop3) for pt in args.per_thread for st in args.stages for lop3 in args.lop3]:
                        words = 32 * warps * pt  # words per step: pt per thread per row
                        cw = 16 if bits == 4 else 32
                        bk = words * (8 if bits == 4 else 4)
                        config = Config(block_n=rows, block_k=bk, unroll=cw, num_warps=warps, num_stages=st)
                        call = lambda: gemv_rows.launch(X, w["qweight"], w["scale"], w.get("zero_point"), None,  # noqa
                                                        out, bits, 128 if bits == 4 else K, config,
                                                        per_thread=pt, lop3=bool(lop3) and bits == 4)
                        out = torch.empty(1, N, device=DEVICE, dtype=torch.half)
                        call()
                        e = rel_error(out, X.float() @ w["W_hat"].T)
                        assert e < 5e-3, (bits, K, N, config, e)
                        us = bench_graph(call, True) * 1e3
                        results.append(dict(K=K, N=N, kind=f"rows-W{bits}", config=config.__dict__, per_thread=pt, lop3=lop3, us=us))
                        print(f"  W{bits} rows={rows} warps={warps} per_thread={pt} lop3={lop3} stages={st} {us:.1f} us "
                              f"x_fp16 {base['fp16'] / us:.2f}", flush=True)
                        if best is None or us < best[0]:
                            best = (us, rows, warps, pt, lop3, st)
            print(f"best W{bits} K={K} N={N}: {best[0]:.1f} us (rows {best[1]}, warps {best[2]}, per thread "
                  f"{best[3]}, lop3 {best[4]}, stages {best[5]}) = {base['fp16'] / best[0]:.2f}x fp16; current default "
                  f"{base['W4A16' if bits == 4 else 'W8A16']:.1f} us", flush=True)
    if args.json:
        args.json.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), copy_GBps=copy,
                                             results=results), indent=1))


if __name__ == "__main__":
    main()
