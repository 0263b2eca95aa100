"""Sweep kernels/gemv_xs.py (an X-stationary W4A16 GEMV, an experiment) at M = 1 against fp16 and the default.

    python benchmarks/gemv_xs_sweep.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import DEVICE, SHAPES, bench_graph, candidates, copy_bandwidth, import_kernels, rel_error  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--R", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--rpp", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--prefetch", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--shapes", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    kernels = import_kernels()
    from course_lib.kernels import gemv_xs
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    pack = lambda c: c[..., 0::2] | (c[..., 1::2] << 4)  # noqa: E731
    for (N, K, group) in [(37, 1024 + 64, 64), (64, 2048, 128), (13, 1024 + 32, 32), (40, 11008, 128)]:
        X = torch.randn(1, K, generator=gen, device=DEVICE).half()
        q = torch.randint(0, 16, (N, K), generator=gen, device=DEVICE, dtype=torch.uint8)
        G = K // group
        z = torch.randint(0, 16, (N, G), generator=gen, device=DEVICE, dtype=torch.uint8)
        s = (torch.rand(N, G, generator=gen, device=DEVICE) * 0.02 + 0.005).half()
        zf = z.reshape(-1)
        zp = pack(torch.cat([zf, zf.new_zeros(zf.numel() % 2)]))
        bias = torch.randn(N, generator=gen, device=DEVICE).half()
        for sym in (True, False):
            ref = kernels.w4a16_reference(X, pack(q), s, None if sym else zp, None, bias).float()
            for R in (1, 2, 4):
                for pf in (False, True):
                    for warps in (2, 4, 8):
                        out = torch.full((1, N), float("nan"), device=DEVICE, dtype=torch.half)
                        gemv_xs.launch(X, pack(q), s, None if sym else zp, bias, out, group, R=R,
                                       rows_per_program=4 * R, num_warps=warps, prefetch=pf)
                        e = rel_error(out, ref)
                        assert e < 5e-3, (N, K, group, sym, R, pf, warps, e)
    print("PTX path correct on ragged and even shapes", flush=True)
    copy = copy_bandwidth(True)
    print(f"copy bandwidth {copy:.0f} GB/s", flush=True)
    results = []
    for si in args.shapes:
        K, N = SHAPES[si]
        fns, weights = candidates(K, N, 128, kernels, gen)
        w4 = weights["w4"]
        X = torch.randn(1, K, generator=gen, device=DEVICE).half()
        base = {}
        for name in ("fp16", "torch-int4", "W4A16"):
            fn = fns[name][1]
            base[name] = bench_graph(lambda: fn(X), True) * 1e3
        print(f"K={K} N={N} " + " ".join(f"{k} {v:.1f}" for k, v in base.items()), flush=True)
        results.append(dict(K=K, N=N, kind="base", us=base))
        best = None
        for R in args.R:
            for warps in args.warps:
                for rpp in args.rpp:
                    for pf in args.prefetch:
                        if rpp % R:
                            continue
                        out = torch.empty(1, N, device=DEVICE, dtype=torch.half)
                        call = lambda: gemv_xs.launch(X, w4["qweight"], w4["scale"], w4["zero_point"], None, out,  # noqa
                                                      128, R=R, rows_per_program=rpp, num_warps=warps,
                                                      prefetch=bool(pf))
                        call()
                        e = rel_error(out, X.float() @ w4["W_hat"].T)
                        assert e < 5e-3, (K, N, R, warps, rpp, pf, e)
                        us = bench_graph(call, True) * 1e3
                        results.append(dict(K=K, N=N, kind="xs", R=R, warps=min(warps, max(K // 1024, 1)), rpp=rpp, prefetch=pf, us=us))
                        print(f"  R={R} warps={warps} rpp={rpp} prefetch={pf} {us:.1f} us "
                              f"x_fp16 {base['fp16'] / us:.2f}", flush=True)
                        if best is None or us < best[0]:
                            best = (us, R, warps, rpp, pf)
        print(f"best K={K} N={N}: {best[0]:.1f} us (R {best[1]}, warps {best[2]}, rpp {best[3]}, prefetch "
              f"{best[4]}) = {base['fp16'] / best[0]:.2f}x fp16; default W4A16 {base['W4A16']:.1f} us = "
              f"{base['fp16'] / base['W4A16']:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), copy_GBps=copy,
                                             results=results), indent=1))


if __name__ == "__main__":
    main()
