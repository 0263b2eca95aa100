"""How far notebook 06's single runs can be trusted: RTN, AWQ and GPTQ wiki perplexity over calibration seeds.

    python benchmarks/awq_seeds.py --json benchmarks/results/awq-seeds-DATE.json     # the recorded run
    python benchmarks/awq_seeds.py --seeds 0 --sizes 8x128 --bits 4 --methods awq     # a slice
    python benchmarks/awq_seeds.py --merge a.json b.json --json all.json             # summarise runs made apart

Notebook 06 quantizes the shipped model (the Q4_1 GGUF dequantized to FP32) with AWQ and GPTQ on one
calibration set, ``calibration_batches(tokenizer, "wiki", n, len, seed=0)`` with n x len = 16 x 256 at the
full budget and 8 x 128 at ``ci``, and puts them next to RTN. This script repeats exactly those runs
(W3 and W4, groups of 64, asymmetric; AWQ with the notebook's α grid of 10 points and the clip search,
GPTQ with the library's defaults) for several calibration seeds and both sizes, and scores each model on
wiki with the pinned protocol at the full budget's 8192 and ci's 2048 eval tokens. RTN and the shipped
model need no calibration and are measured once. It prints, per method, size, width and eval length,
the mean over seeds with a 95% t-interval, the per-seed values, and each method's ratio to RTN and
AWQ's to GPTQ paired by seed.

``--methods awq_symclip`` adds AWQ with the reference's clip range (llm-awq and AutoAWQ clamp a group
to [-r·max|w|, r·max|w|]; the library shrinks [min, max] by r), reported paired with the library's AWQ.

One process per seed (``--seeds S``, all but one with ``--no-baselines``) and ``--merge`` finish sooner.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from datetime import date
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_seeds import interval, ratio_interval  # noqa: E402

from course_lib import awq, awq_search, gptq, models, rtn  # noqa: E402
from course_lib.run_log import cpu_name, portable, save_record  # noqa: E402
from course_lib.data import calibration_batches  # noqa: E402
from course_lib.evaluate import perplexity  # noqa: E402
from course_lib.quant_linear import cached_dequantization  # noqa: E402

N_GRID = 10  # notebook 06's α grid


def symmetric_clip_to(W, ratio, group_size):
    """The reference's clip (llm-awq, AutoAWQ): each (row, group) clamped to [-r·max|w|, r·max|w|]; W [out, in]."""
    out_features, in_features = W.shape
    g = group_size if isinstance(group_size, int) else in_features
    Wg = W.float().reshape(out_features, in_features // g, g)  # [out, n_groups, g]
    ratio = torch.as_tensor(ratio, dtype=Wg.dtype, device=W.device).expand(out_features, in_features // g)[..., None]
    bound = Wg.abs().amax(dim=-1, keepdim=True) * ratio  # [out, n_groups, 1]
    return torch.minimum(torch.maximum(Wg, -bound), bound).reshape(out_features, in_features)


def quantize(model, method, bits, calib):
    quantized = copy.deepcopy(model)
    if method in ("awq", "awq_symclip"):
        config = awq.AWQConfig(bits, 64, n_grid=N_GRID)
        if method == "awq":
            awq.quantize_model(quantized, config, calib=calib, progress=False)
        else:  # the search and the final clip both use the reference's symmetric clamp
            with mock.patch.object(awq_search, "clip_to", symmetric_clip_to), \
                    mock.patch.object(awq, "clip_to", symmetric_clip_to):
                awq.quantize_model(quantized, config, calib=calib, progress=False)
    elif method == "gptq":
        gptq.quantize_model(quantized, gptq.GPTQConfig(bits, 64), calib=calib, progress=False)
    else:
        rtn.quantize_model(quantized, rtn.RTNConfig(bits, 64), progress=False)
    return quantized


def measure(model, tokenizer, eval_tokens):
    with cached_dequantization(model):  # as the notebook scores its models
        return {str(n): perplexity(model, tokenizer, "wiki", n_tokens=n, progress=False) for n in eval_tokens}


def parse_size(text):
    n, length = text.lower().split("x")
    return int(n), int(length)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--methods", nargs="+", default=["awq", "gptq"], choices=["awq", "awq_symclip", "gptq"],
                        help="awq_symclip: AWQ with the reference's symmetric clip range (a variant, default off)")
    parser.add_argument("--sizes", nargs="+", default=["16x256", "8x128"],
                        help="calibration windows x tokens (notebook 06: 16x256 full, 8x128 ci)")
    parser.add_argument("--eval-tokens", type=int, nargs="+", default=[8192, 2048])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-baselines", action="store_true", help="skip the shipped model and RTN")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="summarise the runs of these files instead")
    parser.add_argument("--json", help="write every run and the summary here")
    return parser.parse_args(argv)


def summarise(runs, baselines) -> list[str]:
    eval_tokens = sorted({n for r in runs for n in r["ppl"]}, key=int, reverse=True)
    bits_all = sorted({r["bits"] for r in runs})
    lines = ["wiki perplexity, pinned protocol; mean over calibration seeds [95% t-interval]; per seed in brackets"]
    for n in eval_tokens:
        lines.append(f"-- {n} eval tokens: shipped model (FP32) {baselines['fp32'][n]:.2f}; "
                     + ", ".join(f"RTN W{b} g64 {baselines['rtn'][str(b)][n]:.2f}" for b in bits_all))
        for size in sorted({r["size"] for r in runs}, reverse=True):
            for bits in bits_all:
                by_method = {}
                for method in ("awq", "awq_symclip", "gptq"):
                    mine = sorted((r for r in runs if (r["size"], r["bits"], r["method"]) == (size, bits, method)),
                                  key=lambda r: r["seed"])
                    if not mine:
                        continue
                    values = [r["ppl"][n] for r in mine]
                    by_method[method] = {r["seed"]: r["ppl"][n] for r in mine}
                    mean, low, high = interval(values)
                    to_rtn = ratio_interval(values, [baselines["rtn"][str(bits)][n]] * len(values))
                    below = sum(v < baselines["rtn"][str(bits)][n] for v in values)
                    lines.append(f"{size:>7} W{bits} {method.upper():<12}{mean:8.2f} [{low:6.2f}, {high:6.2f}]  "
                                 f"range {min(values):.2f}-{max(values):.2f}  /RTN {to_rtn[0]:.3f} "
                                 f"({below}/{len(values)} below RTN)  [{' '.join(f'{v:.2f}' for v in values)}]")
                for first, second in (("awq", "gptq"), ("awq_symclip", "awq")):
                    if first not in by_method or second not in by_method:
                        continue
                    seeds = sorted(set(by_method[first]) & set(by_method[second]))
                    ratio = ratio_interval([by_method[first][s] for s in seeds], [by_method[second][s] for s in seeds])
                    wins = sum(by_method[first][s] < by_method[second][s] for s in seeds)
                    lines.append(f"{size:>7} W{bits} {first.upper()}/{second.upper()} paired {ratio[0]:.3f} "
                                 f"[{ratio[1]:.3f}, {ratio[2]:.3f}] ({wins}/{len(seeds)} seeds {first.upper()} lower)")
    return lines


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        parts = [json.load(open(path)) for path in args.merge]
        runs = sorted((r for part in parts for r in part["runs"]),
                      key=lambda r: (r["size"], r["bits"], r["method"], r["seed"]))
        baselines = next(part["baselines"] for part in parts if part["baselines"])
        lines = summarise(runs, baselines)
        print("\n".join(lines))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"commands": [part["command"] for part in parts], "merged": portable(args.merge),
                           "date": parts[0]["date"], "machine": parts[0]["machine"], "gpu": parts[0]["gpu"],
                           "torch": parts[0]["torch"], "baselines": baselines, "runs": runs, "summary": lines},
                          f, indent=1)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer = models.load_model(device=args.device)
    record = {"command": "python benchmarks/awq_seeds.py " + " ".join(portable(argv if argv is not None else sys.argv[1:])),
              "date": str(date.today()), "machine": cpu_name(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "args": {k: portable(v) for k, v in vars(args).items()},
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "baselines": None, "runs": []}

    def save():  # after every run
        save_record(args.json, record)

    clock = time.perf_counter()
    if not args.no_baselines:
        record["baselines"] = {"fp32": measure(model, tokenizer, args.eval_tokens),
                               "rtn": {str(b): measure(quantize(model, "rtn", b, None), tokenizer, args.eval_tokens)
                                       for b in args.bits}}
        save()
        print(f"baselines {record['baselines']}", flush=True)
    for size in args.sizes:
        n, length = parse_size(size)
        for seed in args.seeds:
            calib = calibration_batches(tokenizer, "wiki", n, length, seed=seed)
            for method in args.methods:  # the methods in the order given, so a stopped process has the first ones
                for bits in args.bits:
                    start = time.perf_counter()
                    ppl = measure(quantize(model, method, bits, calib), tokenizer, args.eval_tokens)
                    record["runs"].append({"size": size, "seed": seed, "bits": bits, "method": method, "ppl": ppl,
                                           "seconds": round(time.perf_counter() - start, 1)})
                    save()
                    print(f"{size} seed {seed} W{bits} {method}: {ppl} ({record['runs'][-1]['seconds']:.0f} s)",
                          flush=True)
    if record["baselines"]:
        record["summary"] = summarise(record["runs"], record["baselines"])
        print("\n".join(record["summary"]))
    print(f"total {time.perf_counter() - clock:.0f} s")
    save()


if __name__ == "__main__":
    main()
