"""The authors' GPTQ (IST-DASLab/gptq) on the course model, its calibration windows and its pinned protocol.

    git clone https://github.com/IST-DASLab/gptq ../gptq-authors   # their code, beside this checkout; not part of it
    python benchmarks/gptq_authors.py ../gptq-authors --seeds 0 1 2 --bits 3 4 --json authors.json
    python benchmarks/gptq_authors.py ../gptq-authors --seeds 0 --bits 4 --act-order --json authors-act.json

Issue #26: is the course's GPTQ (course_lib.gptq) the authors' algorithm, within the noise of the
calibration seed? This script imports ``GPTQ`` (gptq.py) and ``Quantizer`` (quant.py) from a checkout of
the authors' repository (the recorded run used commit 2d65066) and drives them the way their llama.py
does without ``--true-sequential``: block by block, all seven linears of a block collect H on the block's
input as the already-quantized earlier blocks produce it, one calibration window at a time; then
``fasterquant(blocksize=128, percdamp=.01, groupsize=64, actorder=A)`` with an asymmetric per-channel
grid fitted per group. The calibration windows are ``data.calibration_batches(tokenizer, "wiki",
n_samples, seq_len, seed)``, the same as ``benchmarks/gptq_seeds.py`` uses, and perplexity is the pinned
protocol on wiki and code. Their column loop is slow on a CPU (hours for the whole model); the recorded
run is on a GPU. ``--layers N`` quantizes only the first N blocks, for a quick check.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
from datetime import date

import torch

from course_lib import models
from course_lib.data import calibration_batches
from course_lib.evaluate import perplexity

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
DOMAINS = ("wiki", "code")


class _BlockDone(Exception):
    """Raised by a hook after the block being calibrated: the rest of the forward is not needed."""


@torch.no_grad()
def quantize_with_authors_code(model, calib, bits: int, act_order: bool, GPTQ, Quantizer, n_blocks=None) -> None:
    """Quantize the decoder blocks in place with the authors' GPTQ class. calib: [n_samples, seq_len]."""
    for block in model.model.layers[:n_blocks]:
        linears = {name: block.get_submodule(name) for name in LINEARS}
        solvers = {}
        for name, linear in linears.items():
            solvers[name] = GPTQ(linear)
            solvers[name].quantizer = Quantizer()
            solvers[name].quantizer.configure(bits, perchannel=True, sym=False, mse=False)
        hooks = [linear.register_forward_hook(lambda m, inp, out, name=name: solvers[name].add_batch(inp[0].data, out.data))
                 for name, linear in linears.items()]
        hooks.append(block.register_forward_hook(lambda *_: (_ for _ in ()).throw(_BlockDone())))
        for j in range(calib.shape[0]):  # one window at a time, as in the authors' loop
            with contextlib.suppress(_BlockDone):
                model(calib[j:j + 1].to(model.device))
        for hook in hooks:
            hook.remove()
        with contextlib.redirect_stdout(io.StringIO()):  # their per-layer timing and error prints
            for name in LINEARS:
                solvers[name].fasterquant(blocksize=128, percdamp=.01, groupsize=64, actorder=act_order)
                solvers[name].free()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("authors_dir", help="a checkout of github.com/IST-DASLab/gptq")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--act-order", action="store_true")
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=None, help="only the first N blocks (a quick check)")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.authors_dir)
    from gptq import GPTQ  # the authors' code, from their checkout
    from quant import Quantizer

    if not torch.cuda.is_available():  # their fasterquant synchronizes CUDA; a CPU check has none
        torch.cuda.synchronize = lambda: None
    commit = subprocess.run(["git", "-C", args.authors_dir, "rev-parse", "HEAD"], capture_output=True, text=True)
    model, tokenizer = models.load_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rows = []
    for seed in args.seeds:
        calib = calibration_batches(tokenizer, "wiki", args.n_samples, args.seq_len, seed=seed)
        for bits in args.bits:
            model.load_state_dict(state)
            t0 = time.perf_counter()
            quantize_with_authors_code(model, calib, bits, args.act_order, GPTQ, Quantizer, args.layers)
            row = {"seed": seed, "bits": bits, "act_order": args.act_order,
                   "seconds": round(time.perf_counter() - t0, 1),
                   **{d: perplexity(model, tokenizer, d, n_tokens=args.eval_tokens, progress=False) for d in DOMAINS}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    with open(args.json, "w") as f:
        json.dump({"date": date.today().isoformat(), "args": {k: v for k, v in vars(args).items() if k != "authors_dir"},
                   "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                   "torch": torch.__version__, "authors_commit": commit.stdout.strip() or None, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
