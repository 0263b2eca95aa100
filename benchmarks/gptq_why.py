"""Why does plain GPTQ at W4 g64 not beat RTN on the default model? The diagnosis, as one script.

    python benchmarks/gptq_why.py                   # 32 x 512 wiki calibration tokens (about 20 min, 2-core CPU)
    python benchmarks/gptq_why.py --n-samples 128   # the library's default calibration size

It prints, for W4 g64 (the pinned perplexity protocol, wiki eval split):

1. FP32, RTN and plain GPTQ perplexity;
2. per layer type, the output error ½ tr(ΔW H ΔWᵀ) of RTN and of GPTQ on held-out text (the first
   16 x 512 tokens of the eval split through the FP32 model), split into the first position of
   each window and the other 511: is GPTQ's layer-wise objective met away from its calibration?
3. perplexity with one layer type at a time put back to RTN: which layers carry the loss?
4. perplexity of GPTQ when the first position of every calibration window is dropped from H, or
   weighted as much as the other 511 positions together: how much does that one token matter?

Step 4 changes how ``HessianAccumulator`` counts tokens for the duration of one run; it is an
experiment on the objective, not a setting of the library.
"""
from __future__ import annotations

import argparse
import copy
import time
from contextlib import contextmanager

import torch

from course_lib import rtn
from course_lib.data import calibration_batches, token_ids
from course_lib.evaluate import perplexity
from course_lib.gptq import GPTQConfig, quantize_model
from course_lib.hessian import output_error
from course_lib.input_stats import HessianAccumulator
from course_lib.probes import hessians_by_position
from course_lib.models import load_model
from course_lib.quant_linear import QuantLinear, cached_dequantization

LAYER_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SWAPS = (("q_proj", "k_proj", "v_proj"), ("q_proj", "k_proj"), ("v_proj",), ("o_proj",), ("gate_proj", "up_proj"),
         ("down_proj",))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--held-out", type=int, default=16, help="held-out windows of seq-len tokens (eval split)")
    return parser.parse_args(argv)


@contextmanager
def first_position_weight(weight: float):
    """Within the block, H counts position 0 of every [batch, seq, in] input ``weight`` times (0 drops it)."""
    add = HessianAccumulator.add

    def reweighted(self, X):
        if X.dim() == 3:
            X = X[:, 1:] if weight == 0 else torch.cat([X[:, :1] * weight ** 0.5, X[:, 1:]], dim=1)  # [b, t, in]
        add(self, X)

    HessianAccumulator.add = reweighted
    try:
        yield
    finally:
        HessianAccumulator.add = add


def main(argv=None) -> None:
    args = parse_args(argv)
    model, tokenizer = load_model(device="cpu")
    calib = calibration_batches(tokenizer, "wiki", args.n_samples, args.seq_len, seed=0)
    n_held = args.held_out * args.seq_len
    held = token_ids(tokenizer, "wiki", "eval", max_tokens=n_held)
    held = held.reshape(args.held_out, args.seq_len)  # [windows, seq_len]

    def ppl(m):
        with cached_dequantization(m):
            return perplexity(m, tokenizer, "wiki", progress=False)

    def gptq_run(weight=None):
        quantized, W_hats = copy.deepcopy(model), {}
        clock = time.perf_counter()
        with first_position_weight(weight) if weight is not None else _nothing():
            quantize_model(quantized, GPTQConfig(4, 64), calib=calib, progress=False,
                           on_layer=lambda n, W, H, r: W_hats.__setitem__(n, r.W_hat.clone()))
        return quantized, W_hats, time.perf_counter() - clock

    print(f"W4 g64; {args.n_samples} x {args.seq_len} wiki calibration tokens; perplexity: pinned protocol, wiki eval")
    rtn_model = rtn.quantize_model(copy.deepcopy(model), rtn.RTNConfig(4, 64), progress=False)
    gptq_model, W_hats, seconds = gptq_run()
    print(f"\n1. FP32 {ppl(model):.2f}   RTN {ppl(rtn_model):.2f}   GPTQ {ppl(gptq_model):.2f} ({seconds:.0f} s)")

    hessians = hessians_by_position(model, held)
    print(f"\n2. held-out output error ½ tr(ΔW H ΔWᵀ), summed over the 30 blocks ({args.held_out} windows)")
    print(f"{'layer type':<11}{'position 0: RTN':>17}{'GPTQ':>10}{'GPTQ/RTN':>10}{'positions 1..: RTN':>20}{'GPTQ':>10}"
          f"{'GPTQ/RTN':>10}")
    for kind in LAYER_TYPES:
        sums = torch.zeros(4, dtype=torch.float64)
        for name, W_hat in W_hats.items():
            if name.endswith(kind):
                W = model.get_submodule(name).weight.detach()
                W_rtn = rtn_model.get_submodule(name).dequantize_weight()
                for k, (Wq, H) in enumerate(((W_rtn, 0), (W_hat, 0), (W_rtn, 1), (W_hat, 1))):
                    sums[k] += output_error(W, Wq, hessians[name][H])
        r0, g0, r1, g1 = sums.tolist()
        print(f"{kind:<11}{r0:>17.4g}{g0:>10.4g}{g0 / r0:>10.2f}{r1:>20.4g}{g1:>10.4g}{g1 / r1:>10.2f}")

    print("\n3. plain GPTQ with one layer type put back to RTN")
    for kinds in SWAPS:
        mixed = copy.deepcopy(gptq_model)
        for name, layer in list(mixed.named_modules()):
            if isinstance(layer, QuantLinear) and name.endswith(kinds):
                mixed.set_submodule(name, copy.deepcopy(rtn_model.get_submodule(name)))
        print(f"   {'/'.join(k.removesuffix('_proj') for k in kinds):<14} from RTN: {ppl(mixed):.2f}")
    del gptq_model

    print("\n4. GPTQ with the first position of each calibration window reweighted in H")
    for weight, label in ((0, "dropped"), (args.seq_len - 1, f"x{args.seq_len - 1} (= all others)")):
        reweighted, _, seconds = gptq_run(weight)
        print(f"   position 0 {label:<22} {ppl(reweighted):.2f} ({seconds:.0f} s)")


@contextmanager
def _nothing():
    yield


if __name__ == "__main__":
    main()
