"""Does GPTQ on the default model get better or worse with more calibration windows? Measured over seeds.

    python benchmarks/gptq_calib_size.py --json benchmarks/results/gptq-calib-size-DATE.json        # the full run
    python benchmarks/gptq_calib_size.py --sizes 32 64 128 --seeds 0 --variants plain --threads 1 --json s0.json
                                                   # the recorded CPU run: this, seed 1 (--no-baselines), --merge
    python benchmarks/gptq_calib_size.py --device cuda --threads 1 --seeds 0 --no-baselines --json s0.json   # one slice
    python benchmarks/gptq_calib_size.py --merge s0.json s1.json ... --json all.json    # summarise slices run apart
    python benchmarks/gptq_calib_size.py --sizes 2 4 --seq-len 64 --seeds 0 1 --eval-tokens 512 --variants plain
                                                                                       # a smoke test (CPU, minutes)

The GPTQ numbers of docs/gptq-awq.md (once in the README) came from two scripts at one seed each: 30.47 wiki
perplexity with 32 x 512 calibration tokens, 31.31 with 128 x 512, as if more calibration made GPTQ worse. One seed cannot say
that: at W4 g64 the calibration seed alone moves GPTQ by a few percent (benchmarks/gptq_seeds.py).

For each calibration seed, ``--max`` = the largest of ``--sizes`` windows of ``--seq-len`` wiki tokens are
drawn once (``data.calibration_batches(..., seed=seed)``) and each size uses the first n of them, so the
sizes of one seed are nested and their comparison is paired. Each (seed, size, variant) quantizes all
210 linears of the decoder blocks with the library's GPTQ (``--bits``, groups of 64, asymmetric, damping
0.01, block 128, float16 scales, forward batch 8), plain or with act-order, and is scored under the
pinned protocol on the wiki and code eval splits (``--eval-tokens`` each). RTN at the same grid and the
shipped model (the Q4_1 file dequantized to FP32) are measured once.

The summary gives, per size and variant, the mean over seeds with a 95% t-interval, and per size the
geometric mean over seeds of (this size / the largest size) with its interval (a t-interval on the log
ratios): an interval that contains 1 means the run cannot tell the sizes apart.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gptq_seeds import interval, load, measure, ratio_interval  # noqa: E402

from course_lib import gptq, rtn  # noqa: E402
from course_lib.run_log import new_record, portable, save_record  # noqa: E402
from course_lib.data import calibration_batches  # noqa: E402

DOMAINS = ("wiki", "code")
VARIANTS = {"plain": False, "act-order": True}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128], help="calibration windows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--eval-tokens", type=int, default=8192, help="per domain (the full budget's 8192)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (the course's protocol) or cuda")
    parser.add_argument("--no-baselines", action="store_true", help="skip FP32 and RTN (another slice measures them)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="summarise the runs of these files instead")
    parser.add_argument("--json", help="write every run and the summary here")
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.seq_len < 2 or args.eval_tokens < 512:
        parser.error("sizes >= 1 window, seq-len >= 2 and eval-tokens >= 512 (one evaluation window)")
    args.sizes = sorted(set(args.sizes))
    return args


def gptq_run(model, calib, n_bits, act_order):
    quantized = copy.deepcopy(model)
    config = gptq.GPTQConfig(n_bits=n_bits, group_size=64, act_order=act_order)
    return gptq.quantize_model(quantized, config, calib=calib, progress=False)


def summarise(runs, baselines, args) -> list[str]:
    largest = max(args.sizes)
    lines = []
    if baselines.get("fp32"):
        lines.append("shipped model (Q4_1 dequantized to FP32): "
                     + ", ".join(f"{d} {baselines['fp32'][d]:.2f}" for d in DOMAINS))
        lines.append(f"RTN W{args.bits} g64: " + ", ".join(f"{d} {baselines['rtn'][d]:.2f}" for d in DOMAINS))
    lines.append(f"{'GPTQ W%d g64' % args.bits:<22}{'windows':>8}"
                 + "".join(f"{d + ' mean [95% CI]':>26}{d + ' / ' + str(largest) + ' windows':>36}" for d in DOMAINS)
                 + "   seeds")
    for variant in args.variants:
        by_seed = {}
        for run in runs:
            if run["variant"] == variant:
                by_seed.setdefault(run["seed"], {})[run["n_samples"]] = run["ppl"]
        for size in args.sizes:
            seeds = sorted(s for s in by_seed if size in by_seed[s])
            paired = [s for s in seeds if largest in by_seed[s]]
            cells = []
            for d in DOMAINS:
                mean, low, high = interval([by_seed[s][size][d] for s in seeds])
                cells.append(f"{mean:>10.2f} [{low:6.2f}, {high:6.2f}]")
                if size == largest or not paired:
                    cells.append("")
                else:
                    r, r_low, r_high = ratio_interval([by_seed[s][size][d] for s in paired],
                                                      [by_seed[s][largest][d] for s in paired])
                    lower = sum(by_seed[s][size][d] < by_seed[s][largest][d] for s in paired)
                    cells.append(f"{r:.3f} [{r_low:.3f}, {r_high:.3f}] {lower}/{len(paired)} lower")
            lines.append(f"{variant:<22}{size:>8}" + "".join(f"{c:>26}" if i % 2 == 0 else f"{c:>36}"
                                                          for i, c in enumerate(cells)) + f"   {len(seeds)}")
    return lines


def merge(paths):
    parts = [json.load(open(path)) for path in paths]
    first = parts[0]["args"]
    for key in ("bits", "seq_len", "eval_tokens"):
        if any(part["args"][key] != first[key] for part in parts):
            raise SystemExit(f"--merge: the files differ in {key}; merge only runs of one protocol.")
    runs, key = {}, lambda r: (r["seed"], r["n_samples"], r["variant"])
    for run in (run for part in parts for run in part["runs"]):
        if key(run) in runs and runs[key(run)]["ppl"] != run["ppl"]:
            raise SystemExit(f"--merge: {key(run)} was run twice with different results: {runs[key(run)]['ppl']} "
                             f"and {run['ppl']}")
        runs[key(run)] = run
    runs = sorted(runs.values(), key=key)
    baselines = next((part["baselines"] for part in parts if part["baselines"].get("fp32")), {})
    args = argparse.Namespace(**{**first, "sizes": sorted({r["n_samples"] for r in runs}),
                                 "seeds": sorted({r["seed"] for r in runs}),
                                 "variants": [v for v in VARIANTS if any(r["variant"] == v for r in runs)]})
    return args, runs, baselines, [part["command"] for part in parts]


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        merged, runs, baselines, commands = merge(args.merge)
        lines = summarise(runs, baselines, merged)
        print("\n".join(lines))
        save_record(args.json, {"commands": commands, "merged": portable(args.merge),
                                "args": {k: portable(v) for k, v in vars(merged).items()}, "baselines": baselines,
                                "runs": runs, "summary": lines})
        return
    model, tokenizer = load(args)
    clock = time.perf_counter()
    record = new_record("benchmarks/gptq_calib_size.py", argv if argv is not None else sys.argv[1:], args, args.device,
                        baselines={}, runs=[])

    def save():  # after every run
        save_record(args.json, record)

    print(f"# {record['machine']}, {record['threads']} threads, torch {torch.__version__}, {date.today()}; "
          f"W{args.bits} g64; sizes {args.sizes} x {args.seq_len} wiki tokens; {args.eval_tokens} eval tokens per domain",
          flush=True)
    eval_tokens = args.eval_tokens
    if not args.no_baselines:
        record["baselines"]["fp32"] = measure(model, tokenizer, eval_tokens)
        quantized = rtn.quantize_model(copy.deepcopy(model), rtn.RTNConfig(n_bits=args.bits, group_size=64), progress=False)
        record["baselines"]["rtn"] = measure(quantized, tokenizer, eval_tokens)
        save()
    for seed in args.seeds:
        windows = calibration_batches(tokenizer, "wiki", max(args.sizes), args.seq_len, seed=seed)  # [max, seq_len]
        for size in args.sizes:
            for variant in args.variants:
                start = time.perf_counter()
                ppl = measure(gptq_run(model, windows[:size], args.bits, VARIANTS[variant]), tokenizer, eval_tokens)
                record["runs"].append({"seed": seed, "n_samples": size, "variant": variant, "ppl": ppl,
                                       "seconds": round(time.perf_counter() - start, 1)})
                save()
                print(f"seed {seed} {size:>4} windows {variant:<9}: wiki {ppl['wiki']:.2f} code {ppl['code']:.2f} "
                      f"({record['runs'][-1]['seconds']:.0f} s)", flush=True)
    record["summary"] = summarise(record["runs"], record["baselines"], args)
    print("\n".join(record["summary"]))
    print(f"total {time.perf_counter() - clock:.0f} s")
    save()


if __name__ == "__main__":
    main()
