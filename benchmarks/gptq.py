"""Time GPTQ on the default model, stage by stage, and measure what it buys over RTN.

    python benchmarks/gptq.py                       # 128 x 512 wiki calibration tokens, W4 g64
    python benchmarks/gptq.py --n-bits 3 --act-order --eval

Prints one table: seconds per stage of ``gptq.quantize_model`` (capturing block-0 inputs,
the Hessian passes, the per-layer solves, packing, the block forward that feeds the next
block) and the total; with ``--eval``, wiki and code perplexity (the pinned protocol) of
the GPTQ model next to RTN at the same setting, and the shipped model in FP32 (itself
dequantized from 4 bits). CPU threads: ``torch.get_num_threads()``.

The stages are timed from outside: for the run, each function that does a stage's work is
replaced by a timed wrapper (``unittest.mock.patch``), so the library carries no timing code.
"""
from __future__ import annotations

import argparse
import copy
import platform
import time
from contextlib import ExitStack, contextmanager
from unittest import mock

import torch

from course_lib import blockwise, gptq, models, rtn
from course_lib.data import calibration_batches
from course_lib.evaluate import perplexity
from course_lib.gptq import GPTQConfig, GPTQResult, quantize_model
from course_lib.quant_linear import cached_dequantization

# stage -> (where the function is looked up when GPTQ runs, its name)
STAGES = {
    "capture inputs": (blockwise, "capture_block_inputs"),
    "hessian": (gptq, "run_block"),
    "gptq solve": (gptq, "gptq_quantize"),
    "pack": (GPTQResult, "to_quant_linear"),
    "block forward": (blockwise, "block_outputs"),
}


@contextmanager
def stage_timer(timings: dict):
    """While open, every stage's function adds its seconds to ``timings[stage]``."""
    with ExitStack() as stack:
        for stage, (owner, name) in STAGES.items():
            original = getattr(owner, name)

            def timed(*args, _original=original, _stage=stage, **kwargs):
                clock = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    timings[_stage] = timings.get(_stage, 0.0) + time.perf_counter() - clock

            stack.enter_context(mock.patch.object(owner, name, timed))
        yield timings


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--n-bits", type=int, default=4)
    parser.add_argument("--group-size", default="64", help="an int, 'channel' or 'tensor'")
    parser.add_argument("--act-order", action="store_true")
    parser.add_argument("--true-sequential", action="store_true")
    parser.add_argument("--eval", action="store_true", help="also measure wiki and code perplexity against RTN")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    group_size = int(args.group_size) if args.group_size.isdigit() else args.group_size
    model, tokenizer = models.load_model(device="cpu")
    calib = calibration_batches(tokenizer, "wiki", args.n_samples, args.seq_len, seed=0)
    config = GPTQConfig(args.n_bits, group_size, act_order=args.act_order, true_sequential=args.true_sequential)
    quantized, timings = copy.deepcopy(model), {}
    clock = time.perf_counter()
    with stage_timer(timings):
        quantize_model(quantized, config, calib=calib)
    total = time.perf_counter() - clock

    print(f"\nGPTQ {config}\n{args.n_samples} x {args.seq_len} calibration tokens (wiki), "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'stage':<16}{'seconds':>10}")
    for stage in STAGES:
        print(f"{stage:<16}{timings.get(stage, 0.0):>10.1f}")
    print(f"{'other':<16}{total - sum(timings.values()):>10.1f}")
    print(f"{'total':<16}{total:>10.1f}")
    if args.eval:
        baseline = copy.deepcopy(model)
        rtn.quantize_model(baseline, rtn.RTNConfig(args.n_bits, group_size), progress=False)
        print(f"\n{'model':<10}{'wiki':>10}{'code':>10}")
        for name, m in (("reference", model), ("RTN", baseline), ("GPTQ", quantized)):
            with cached_dequantization(m):
                wiki, code = (perplexity(m, tokenizer, corpus, progress=False) for corpus in ("wiki", "code"))
            print(f"{name:<10}{wiki:>10.2f}{code:>10.2f}")


if __name__ == "__main__":
    main()
