"""How far one GPTQ run on the default model can be trusted: perplexity over calibration seeds.

    python benchmarks/gptq_seeds.py --json benchmarks/results/gptq-seeds-DATE.json      # the recorded run
    python benchmarks/gptq_seeds.py --seeds 0 1 --bits 3 --grid-from updated --scale-dtype float16   # a slice
    python benchmarks/gptq_seeds.py --merge a.json b.json --json all.json   # summarise runs made apart

The column loop of GPTQ runs on one thread, so on a machine of N cores N processes with
``--threads 1`` and different ``--seeds`` (one of them with ``--batch-sizes``, the others with
``--batch-sizes`` empty) finish about N times sooner; ``--merge`` then reads their JSON files.

For each calibration seed (``data.calibration_batches(tokenizer, "wiki", n_samples, seq_len, seed)``),
bit width (W3, W4; groups of 64, asymmetric, damping 0.01, block 128) and GPTQ variant:

    grid_from    "updated" (the library's default: a group's grid is fitted on the weights as updated
                 so far) or "block_start" (the authors' code: as they stood when the lazy batch began)
    scale dtype  float16 (what QuantLinear stores) or float32

it quantizes all 210 linears of the decoder blocks and measures wiki and code perplexity under the
pinned protocol (eval split, 512-token windows, ``--eval-tokens`` tokens each). RTN at the same grid
and the shipped model (the Q4_1 file dequantized to FP32) are measured once. Then it prints, per
setting, the mean over seeds with a 95% t-interval, and per pair of variants the mean ratio over
paired seeds (same calibration windows) with its interval (a t-interval on the log ratio).

Last, ``--batch-sizes``: the same W3 run (first seed, default variant) with only GPTQConfig.batch_size
changed, the number of calibration windows sent through a block at once. In exact arithmetic it
changes nothing; in float32 it changes the order of sums.

Layers are kept as dense ``nn.Linear`` holding GPTQ's ``W_hat`` instead of packed ``QuantLinear``s (whose
dequantized weight equals ``W_hat`` exactly for float16 scales), so that float32 scales are evaluated as
computed. CPU, float32: a rerun with the same arguments reproduces every digit.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
import time
from contextlib import ExitStack
from datetime import date
from unittest import mock

import torch
from torch import nn

from course_lib import gptq, models, rtn
from course_lib.data import calibration_batches
from course_lib.evaluate import perplexity
from course_lib.calibration import geometric_t_interval
from course_lib.calibration import t_interval as interval
from course_lib.gptq import GPTQConfig, GPTQResult
from course_lib.run_log import new_record, portable, save_record

DOMAINS = ("wiki", "code")
SCALE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def ratio_interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Geometric mean of a_i / b_i over paired runs and its 95% interval (t on the log ratios)."""
    return geometric_t_interval([x / y for x, y in zip(a, b)])


def dense_layer(result: GPTQResult, bias: torch.Tensor | None = None) -> nn.Linear:
    """An ``nn.Linear`` holding ``result.W_hat``: what a packed layer computes, at any scale dtype."""
    out_features, in_features = result.W_hat.shape
    layer = nn.Linear(in_features, out_features, bias=bias is not None, device=result.W_hat.device)
    layer.weight.data.copy_(result.W_hat)
    if bias is not None:
        layer.bias.data.copy_(bias)
    return layer


def gptq_run(model, calib, n_bits, grid_from, scale_dtype, batch_size=8):
    quantized = copy.deepcopy(model)
    config = GPTQConfig(n_bits=n_bits, group_size=64, grid_from=grid_from, batch_size=batch_size)
    with ExitStack() as stack:
        solve = functools.partial(gptq.gptq_quantize, scale_dtype=SCALE_DTYPES[scale_dtype])
        stack.enter_context(mock.patch.object(gptq, "gptq_quantize", solve))
        stack.enter_context(mock.patch.object(GPTQResult, "to_quant_linear", dense_layer))
        gptq.quantize_model(quantized, config, calib=calib, progress=False)
    return quantized


def measure(model, tokenizer, eval_tokens):
    return {domain: perplexity(model, tokenizer, domain, n_tokens=eval_tokens, progress=False) for domain in DOMAINS}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--grid-from", nargs="+", default=list(gptq.GRID_FROM), choices=gptq.GRID_FROM)
    parser.add_argument("--scale-dtype", nargs="+", default=list(SCALE_DTYPES), choices=list(SCALE_DTYPES))
    parser.add_argument("--n-samples", type=int, default=32, help="calibration windows (default 32)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--eval-tokens", type=int, default=8192, help="per domain (the full budget's 8192)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 4, 8],
                        help="W3 runs at the first seed with only batch_size changed (none: skip)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default: the course's protocol) or cuda")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip FP32 and RTN (measured by another process of a --merge)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="summarise the runs of these files instead")
    parser.add_argument("--json", help="write every run and the summary here")
    return parser.parse_args(argv)


def summarise(runs, rtn_ppl, fp32_ppl, args) -> list[str]:
    lines = [f"shipped model (Q4_1 dequantized to FP32): " + ", ".join(f"{d} {fp32_ppl[d]:.2f}" for d in DOMAINS)]
    lines.append(f"{'setting':<34}" + "".join(f"{d + ' mean [95% CI]':>26}" for d in DOMAINS) + "   per seed")
    for bits in args.bits:
        lines.append(f"{f'RTN W{bits} g64':<34}" + "".join(f"{rtn_ppl[bits][d]:>26.2f}" for d in DOMAINS))
        for grid_from in args.grid_from:
            for dtype in args.scale_dtype:
                mine = [r for r in runs if (r["bits"], r["grid_from"], r["scale_dtype"]) == (bits, grid_from, dtype)]
                cells = []
                for d in DOMAINS:
                    mean, low, high = interval([r["ppl"][d] for r in mine])
                    cells.append(f"{mean:>10.2f} [{low:6.2f}, {high:6.2f}]")
                seeds = " ".join(f"{r['ppl']['wiki']:.1f}/{r['ppl']['code']:.1f}" for r in mine)
                lines.append(f"{f'GPTQ W{bits} {grid_from} {dtype}':<34}" + "".join(f"{c:>26}" for c in cells)
                             + f"   {seeds}")
    lines.append("")
    lines.append("paired ratios over seeds (geometric mean [95% CI]); below 1: the first is better")
    pairs = []
    if len(args.grid_from) == 2:
        pairs += [(f"block_start / updated, {dtype}", ("block_start", dtype), ("updated", dtype))
                  for dtype in args.scale_dtype]
    if len(args.scale_dtype) == 2:
        pairs += [(f"float32 / float16 scales, {g}", (g, "float32"), (g, "float16")) for g in args.grid_from]
    for bits in args.bits:
        for label, first, second in pairs:
            a = {r["seed"]: r["ppl"] for r in runs if (r["bits"], r["grid_from"], r["scale_dtype"]) == (bits, *first)}
            b = {r["seed"]: r["ppl"] for r in runs if (r["bits"], r["grid_from"], r["scale_dtype"]) == (bits, *second)}
            seeds = sorted(set(a) & set(b))
            cells = []
            for d in DOMAINS:
                mean, low, high = ratio_interval([a[s][d] for s in seeds], [b[s][d] for s in seeds])
                wins = sum(a[s][d] < b[s][d] for s in seeds)
                cells.append(f"{d} {mean:.3f} [{low:.3f}, {high:.3f}] ({wins}/{len(seeds)} lower)")
            lines.append(f"W{bits} {label:<40}" + "   ".join(cells))
        rtn_cells = []
        for d in DOMAINS:
            default = [r["ppl"][d] for r in runs if (r["bits"], r["grid_from"], r["scale_dtype"]) == (bits, "updated", "float16")]
            if default:
                mean, low, high = ratio_interval(default, [rtn_ppl[bits][d]] * len(default))
                rtn_cells.append(f"{d} {mean:.3f} [{low:.3f}, {high:.3f}]")
        if rtn_cells:
            lines.append(f"W{bits} {'GPTQ (updated, float16) / RTN':<40}" + "   ".join(rtn_cells))
    return lines


def merge(args):
    """Summarise runs written by several processes under one protocol (the baselines from whichever file has them)."""
    parts = [json.load(open(path)) for path in args.merge]
    first = parts[0]
    for key in ("n_samples", "seq_len", "eval_tokens"):
        if any(part["args"][key] != first["args"][key] for part in parts):
            raise SystemExit(f"--merge: the files differ in {key}; merge only runs of one protocol.")
    runs, key = {}, lambda r: (r["seed"], r["bits"], r["grid_from"], r["scale_dtype"])
    for run in (run for part in parts for run in part["runs"]):
        if key(run) in runs and runs[key(run)]["ppl"] != run["ppl"]:  # one setting run twice must agree to the digit
            raise SystemExit(f"--merge: {key(run)} was run twice with different results: {runs[key(run)]['ppl']} "
                             f"and {run['ppl']} (different threads or software?)")
        runs[key(run)] = run
    runs = sorted(runs.values(), key=key)
    settings = {key: sorted({r[key] for r in runs}, key=str) for key in ("seed", "bits", "grid_from", "scale_dtype")}
    merged = argparse.Namespace(**{**first["args"], "seeds": settings["seed"], "bits": settings["bits"],
                                   "grid_from": settings["grid_from"][::-1], "scale_dtype": settings["scale_dtype"]})
    with_baselines = [part for part in parts if part["fp32"]]
    if not with_baselines:
        raise SystemExit("--merge: no file holds the FP32 and RTN baselines (run one part without --no-baselines).")
    rtn_ppl = {int(k): v for k, v in with_baselines[0]["rtn"].items()}
    batch_runs = sorted((r for part in parts for r in part["batch_size_runs"]), key=lambda r: r["batch_size"])
    return merged, runs, rtn_ppl, with_baselines[0]["fp32"], batch_runs, [part["command"] for part in parts]


def report(args, runs, rtn_ppl, fp32_ppl, batch_runs) -> list[str]:
    lines = summarise(runs, rtn_ppl, fp32_ppl, args)
    if batch_runs:
        lines += ["", "W3 GPTQ (updated, float16), one seed, only the forward batch size changed:"]
        lines += [f"  seed {r.get('seed', args.seeds[0])}, batch_size {r['batch_size']}: wiki {r['ppl']['wiki']:.2f}, code {r['ppl']['code']:.2f}"
                  for r in batch_runs]
    return lines


def load(args):
    """The default model on ``args.device``, with ``args.threads`` torch threads (if given) and torch's seed 0."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return models.load_model(device=args.device)


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        merged, runs, rtn_ppl, fp32_ppl, batch_runs, commands = merge(args)
        lines = report(merged, runs, rtn_ppl, fp32_ppl, batch_runs)
        print("\n".join(lines))
        save_record(args.json, {"commands": commands, "merged": portable(args.merge),
                                "args": {k: portable(v) for k, v in vars(merged).items()}, "fp32": fp32_ppl,
                                "rtn": {str(k): v for k, v in rtn_ppl.items()}, "runs": runs,
                                "batch_size_runs": batch_runs, "summary": lines})
        return
    model, tokenizer = load(args)
    clock = time.perf_counter()
    record = new_record("benchmarks/gptq_seeds.py", argv if argv is not None else sys.argv[1:], args, args.device,
                        fp32=None, rtn={}, runs=[], batch_size_runs=[])

    def save():  # after every run
        save_record(args.json, record)

    print(f"# {record['machine']}, {record['threads']} threads, torch {torch.__version__}, {date.today()}; "
          f"{args.n_samples} x {args.seq_len} wiki calibration tokens; {args.eval_tokens} eval tokens per domain",
          flush=True)
    if not args.no_baselines:
        record["fp32"] = measure(model, tokenizer, args.eval_tokens)
        for bits in args.bits:
            quantized = rtn.quantize_model(copy.deepcopy(model), rtn.RTNConfig(n_bits=bits, group_size=64),
                                           progress=False)
            record["rtn"][str(bits)] = measure(quantized, tokenizer, args.eval_tokens)
        save()
    for seed in args.seeds:
        calib = calibration_batches(tokenizer, "wiki", args.n_samples, args.seq_len, seed=seed)
        for bits in args.bits:
            for grid_from in args.grid_from:
                for dtype in args.scale_dtype:
                    start = time.perf_counter()
                    ppl = measure(gptq_run(model, calib, bits, grid_from, dtype), tokenizer, args.eval_tokens)
                    record["runs"].append({"seed": seed, "bits": bits, "grid_from": grid_from, "scale_dtype": dtype,
                                           "ppl": ppl, "seconds": round(time.perf_counter() - start, 1)})
                    save()
                    print(f"seed {seed} W{bits} {grid_from:<11} {dtype}: wiki {ppl['wiki']:.2f} code {ppl['code']:.2f} "
                          f"({record['runs'][-1]['seconds']:.0f} s)", flush=True)
    if args.batch_sizes:
        calib = calibration_batches(tokenizer, "wiki", args.n_samples, args.seq_len, seed=args.seeds[0])
        for batch_size in args.batch_sizes:
            ppl = measure(gptq_run(model, calib, 3, "updated", "float16", batch_size), tokenizer, args.eval_tokens)
            record["batch_size_runs"].append({"seed": args.seeds[0], "batch_size": batch_size, "ppl": ppl})
            save()
            print(f"W3 updated float16, seed {args.seeds[0]}, batch_size {batch_size}: wiki {ppl['wiki']:.2f} "
                  f"code {ppl['code']:.2f}", flush=True)
    if record["fp32"]:
        rtn_ppl = {int(k): v for k, v in record["rtn"].items()}
        record["summary"] = report(args, record["runs"], rtn_ppl, record["fp32"], record["batch_size_runs"])
        print("\n".join(record["summary"]))
    print(f"total {time.perf_counter() - clock:.0f} s")
    save()


if __name__ == "__main__":
    main()
