"""Notebook 08's key comparison at a realistic calibration size, over calibration seeds.

    python benchmarks/calibration_realistic.py --device cuda --jobs 12 --threads 1 --json calibration-realistic.json
                                                                                          # the recorded run
    python benchmarks/calibration_realistic.py --device cpu --n-samples 2 --seq-len 64 --eval-tokens 512 \\
        --seeds 0 --sources wiki code --n-grid 2                                           # a smoke test (minutes)

Notebook 08 calibrates on 8 x 256 tokens (4 x 128 at the ci budget) to fit a laptop. This script runs
its W3 g64 comparison at ``--n-samples`` x ``--seq-len`` calibration tokens (default 64 x 512):

- GPTQ and AWQ (the library's defaults: GPTQConfig, and AWQConfig with its reference grid of
  ``--n-grid`` = 20 points), each calibrated on every source of ``--sources`` (default wiki, code,
  sql and an equal mix; ``calibration.build``, calib splits only), for every seed of ``--seeds``;
- RTN at the same grid, and the reference model (the shipped Q4_1 file dequantized to FP32), once.

Every model is scored on the eval split of every corpus under the pinned protocol (the first
``--eval-tokens`` tokens, default the full budget's 8,192; 512-token windows, fp32), and the NLL of
each block of ``--block`` consecutive predictions is kept, so that a reader can bootstrap over
evaluation blocks (``calibration.bootstrap_perplexities``), as notebook 08 does with these files.

It prints, for each method: the perplexity increase Δ over the reference, the mismatch ratio
r(c, d) = Δ(c, d) / Δ(d, d) of every pair per seed with a 95% bootstrap interval over evaluation
blocks, and the spread of r over seeds; then GPTQ and AWQ calibrated on wiki against RTN per domain
(the W3 calibration trap), per seed and as a geometric mean over seeds with a t-interval.

``--jobs N`` runs the quantizations in N processes (spawned; each loads the model once and uses
``--threads`` torch threads). On one GPU, a handful of processes share it well: GPTQ's column loop
is many small kernels. On the GPU, float32 sums run in another order than on the CPU, so the digits
differ from a CPU run's; the code corpus is the running interpreter's standard library, so its
column follows the Python version (recorded in the file).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context

import torch

from course_lib import awq, calibration, data, evaluate, gptq, models, rtn
from course_lib.evaluate import WINDOW
from course_lib.quant_linear import cached_dequantization
from course_lib.run_log import cpu_name, portable, save_record

DOMAINS = data.CORPORA  # wiki, code, sql: every corpus ships with the course (code: this Python's stdlib)

def token_nll(model, tokenizer, corpus: str, n_tokens: int) -> torch.Tensor:
    """[n_windows, WINDOW - 1] NLL of every prediction on the pinned protocol's windows of ``corpus``'s eval split."""
    with cached_dequantization(model):
        return evaluate.token_nll(model, tokenizer, corpus, n_tokens)


def score(model, tokenizer, args) -> dict:
    """{"ppl": {domain: perplexity}, "block_nll": {domain: [NLL of each block]}} on every domain."""
    out = {"ppl": {}, "block_nll": {}}
    for domain in DOMAINS:
        nll = token_nll(model, tokenizer, domain, args.eval_tokens)
        out["ppl"][domain] = math.exp(float(nll.sum()) / nll.numel())
        out["block_nll"][domain] = calibration.block_sums(nll, args.block)[0].tolist()
    return out


# ---------------------------------------------------------------- one process's work

_STATE = {}


def _setup(device: str, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    _STATE["model"], _STATE["tokenizer"] = models.load_model(device=device)


def run_one(task: dict, args: argparse.Namespace) -> dict:
    """Quantize a copy of the reference model as ``task`` says and score it: one entry of "runs"."""
    model, tokenizer = _STATE["model"], _STATE["tokenizer"]
    quantized = copy.deepcopy(model)
    start = time.perf_counter()
    method, source, seed = task["method"], task["source"], task["seed"]
    if method == "RTN":
        rtn.quantize_model(quantized, rtn.RTNConfig(n_bits=task["bits"], group_size=64), progress=False)
    else:
        weights = {corpus: 1 for corpus in DOMAINS} if source == "mix" else source
        calib = calibration.build(tokenizer, weights, args.n_samples, args.seq_len, seed=seed)
        if method == "GPTQ":
            gptq.quantize_model(quantized, gptq.GPTQConfig(n_bits=task["bits"], group_size=64), calib=calib,
                                progress=False)
        else:
            awq.quantize_model(quantized, awq.AWQConfig(n_bits=task["bits"], group_size=64, n_grid=args.n_grid),
                               calib=calib, progress=False)
    seconds = time.perf_counter() - start
    result = score(quantized, tokenizer, args)
    del quantized
    return {**task, **result, "seconds": round(seconds, 1)}


def _worker(task, args):
    try:
        return run_one(task, args)
    except Exception:  # report it with the task; the other tasks go on
        import traceback
        return {**task, "error": traceback.format_exc()}


# ---------------------------------------------------------------- the summary


def resampled(record: dict, keys: list, domain: str, n_resamples: int) -> dict:
    """{key: [n_resamples] resampled perplexities on ``domain``}, all on the same draws; key None: the reference."""
    rows = {None: record["reference"]["block_nll"][domain]}
    rows.update({key: run["block_nll"][domain] for key, run in keys})
    ppl = calibration.bootstrap_perplexities(torch.tensor(list(rows.values())),
                                             torch.tensor(record["block_count"][domain]), n_resamples)
    return dict(zip(rows, ppl))


def summarise(record: dict) -> list[str]:
    args = record["args"]
    runs = record["runs"]
    n_resamples = args["n_resamples"]
    ref = record["reference"]["ppl"]
    lines = [f"reference (shipped model in FP32): " + ", ".join(f"{d} {ref[d]:.2f}" for d in DOMAINS)]
    for bits in args["bits"]:
        [rtn_run] = [r for r in runs if r["method"] == "RTN" and r["bits"] == bits]
        lines.append(f"RTN W{bits} g64: " + ", ".join(f"{d} {rtn_run['ppl'][d]:.2f}" for d in DOMAINS))
        for method in args["methods"]:
            mine = [r for r in runs if r["method"] == method and r["bits"] == bits]
            seeds = sorted({r["seed"] for r in mine})
            lines += ["", f"{method} W{bits} g64, {args['n_samples']} x {args['seq_len']} calibration tokens, "
                          f"seeds {seeds}: perplexity, mean over seeds [min, max]"]
            lines.append(f"{'calibrated on':<14}" + "".join(f"{d:>24}" for d in DOMAINS))
            for source in args["sources"]:
                cells = []
                for d in DOMAINS:
                    values = [r["ppl"][d] for r in mine if r["source"] == source]
                    cells.append(f"{statistics.fmean(values):8.2f} [{min(values):6.2f}, {max(values):6.2f}]")
                lines.append(f"{source:<14}" + "".join(f"{c:>24}" for c in cells))
            lines.append(f"mismatch ratio r(c, d) per seed [95% bootstrap over {args['block']}-prediction eval "
                         "blocks]; undefined share when the resampled in-domain Δ <= 0")
            for d in DOMAINS:
                if d not in args["sources"]:
                    continue
                for c in args["sources"]:
                    if c == d:
                        continue
                    cells = []
                    for seed in seeds:
                        pick = {k: next(r for r in mine if r["source"] == k and r["seed"] == seed) for k in (c, d)}
                        draws = resampled(record, list(pick.items()), d, n_resamples)
                        delta = {k: pick[k]["ppl"][d] - ref[d] for k in (c, d)}
                        r = delta[c] / delta[d] if delta[d] > 0 else math.nan
                        low, high, undefined = calibration.percentile_interval(
                            calibration.ratio_draws(draws[c] - draws[None], draws[d] - draws[None]))
                        cells.append(f"{r:6.2f} [{low:5.2f}, {high:5.2f}]" + (f" ({undefined:.0%} undef.)"
                                                                             if undefined else ""))
                    lines.append(f"  {c:>5} -> {d:<5}" + "  ".join(cells))
        lines += ["", f"W{bits}: calibrated on wiki against RTN, ppl / ppl_RTN per seed; geometric mean over seeds "
                      "[95% t-interval on the log ratio]"]
        for method in args["methods"]:
            if "wiki" not in args["sources"]:
                continue
            wiki = [r for r in runs if r["method"] == method and r["bits"] == bits and r["source"] == "wiki"]
            cells = []
            for d in DOMAINS:
                logs = [math.log(r["ppl"][d] / rtn_run["ppl"][d]) for r in wiki]
                mean, low, high = calibration.t_interval(logs)
                cells.append(f"{d} {math.exp(mean):.2f} [{math.exp(low):.2f}, {math.exp(high):.2f}] ("
                             + " ".join(f"{math.exp(x):.2f}" for x in logs) + ")")
            lines.append(f"  {method}: " + "; ".join(cells))
    return lines


# ---------------------------------------------------------------- the run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n-samples", type=int, default=64, help="calibration windows (default 64)")
    parser.add_argument("--seq-len", type=int, default=512, help="tokens per calibration window (default 512)")
    parser.add_argument("--eval-tokens", type=int, default=8192, help="per domain (default: the full budget's 8192)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=[3])
    parser.add_argument("--methods", nargs="+", default=["GPTQ", "AWQ"], choices=["GPTQ", "AWQ"])
    parser.add_argument("--sources", nargs="+", default=[*DOMAINS, "mix"], choices=[*DOMAINS, "mix"])
    parser.add_argument("--n-grid", type=int, default=awq.AWQConfig.n_grid, help="AWQ's α grid (default 20)")
    parser.add_argument("--block", type=int, default=128, help="predictions per bootstrap block (default 128)")
    parser.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1: all in this one)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's)")
    parser.add_argument("--json", help="write every run and the summary here")
    parser.add_argument("--resume", metavar="JSON", help="keep the runs of this earlier file (same settings) and run "
                                                         "only the missing ones")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    argv = argv if argv is not None else sys.argv[1:]
    clock = time.perf_counter()
    _setup(args.device, args.threads)  # also builds the model cache once, before any worker starts
    record = {"command": "python benchmarks/calibration_realistic.py " + " ".join(portable(list(argv))),
              "date": str(date.today()), "machine": cpu_name(),
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "torch": torch.__version__, "python": platform.python_version(),
              "code_corpus": f"Python {platform.python_version()} standard library",
              "threads": torch.get_num_threads(), "args": {k: portable(v) for k, v in vars(args).items()}}
    print(f"# {record['gpu'] or record['machine']}, torch {record['torch']}, Python {record['python']}, "
          f"{record['date']}; {args.n_samples} x {args.seq_len} calibration tokens; {args.eval_tokens} eval tokens "
          "per domain", flush=True)
    tokenizer = _STATE["tokenizer"]
    for domain in DOMAINS:  # warm the token cache before the workers read it
        data.token_ids(tokenizer, domain, "eval", max_tokens=args.eval_tokens)
        data.token_ids(tokenizer, domain, "calib")
    n_predictions = WINDOW - 1
    record["block_count"] = {d: calibration.block_sums(torch.zeros(args.eval_tokens // WINDOW, n_predictions),
                                                       args.block)[1].tolist() for d in DOMAINS}
    tasks = [{"method": "RTN", "bits": bits, "source": "none", "seed": None} for bits in args.bits]
    tasks += [{"method": method, "bits": bits, "source": source, "seed": seed}
              for seed in args.seeds for bits in args.bits for method in args.methods for source in args.sources]
    record["runs"] = []
    if args.resume:  # a run stopped early (say, by a time limit): keep what it measured
        earlier = json.load(open(args.resume))
        for key in ("n_samples", "seq_len", "eval_tokens", "n_grid", "block"):
            if earlier["args"][key] != getattr(args, key):
                raise SystemExit(f"--resume: {args.resume} ran with {key} = {earlier['args'][key]}, "
                                 f"not {getattr(args, key)}")
        record["reference"], record["runs"] = earlier["reference"], earlier["runs"]
        record["resumed_from"] = earlier["command"]
        done_keys = {(r["method"], r["bits"], r["source"], r["seed"]) for r in record["runs"]}
        tasks = [t for t in tasks if (t["method"], t["bits"], t["source"], t["seed"]) not in done_keys]
        print(f"resumed {len(record['runs'])} runs from {portable(args.resume)}; {len(tasks)} to go", flush=True)
    else:
        record["reference"] = score(_STATE["model"], tokenizer, args)

    failed = []

    def done(run):
        if "error" in run:
            failed.append(run)
            print(f"{run['method']} W{run['bits']} {run['source']} seed {run['seed']} FAILED:\n{run['error']}",
                  flush=True)
            return
        record["runs"].append(run)
        print(f"{run['method']:>4} W{run['bits']} {run['source']:<5} seed {run['seed']}: "
              + ", ".join(f"{d} {p:.2f}" for d, p in run["ppl"].items()) + f" (quantized in {run['seconds']:.0f} s)",
              flush=True)
        save_record(args.json, record)  # after every run

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"), initializer=_setup,
                                 initargs=(args.device, args.threads)) as pool:
            for future in [pool.submit(_worker, task, args) for task in tasks]:
                done(future.result())
    else:
        for task in tasks:
            done(_worker(task, args))
    if failed:
        raise SystemExit(f"{len(failed)} runs failed (above); the {len(record['runs'])} others are in {args.json}: "
                         "fix the cause and run again with --resume")
    record["summary"] = summarise(record)
    record["seconds"] = round(time.perf_counter() - clock)
    print("\n".join(record["summary"]))
    print(f"total {record['seconds']} s")
    save_record(args.json, record)


if __name__ == "__main__":
    main()
