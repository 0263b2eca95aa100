"""AWQ (Lin et al., 2023): activation-aware weight quantization.

A few input channels carry much larger activations than the rest; the weights that meet
them matter most. AWQ protects them without mixed precision: it scales those input
columns of W up by s before rounding (their relative rounding error shrinks) and folds
s⁻¹ into the operation that produces the input, so the float model is unchanged:

    y = W x = (W · diag(s)) (diag(s)⁻¹ x),     argmin_s ‖Q(W·s)(s⁻¹X) − WX‖

This module has

* the salience experiment: keep the top 1% of input channels (by mean |x|) of every
  layer exact in FP16 and round the rest, against a random 1% (:func:`keep_columns`,
  :func:`apply_salience`);
* :func:`quantize_model`: block by block (``blockwise.sequential_blocks``) collect each
  input's second moment C = XᵀX/n and mean |x|, search every scale group's α on the block's
  FP weights, fold s (``fold.fold_group``), search each linear's clip ratios, and swap in
  packed ``QuantLinear`` layers.

The searches themselves are in ``awq_search.py``. Unlike the reference code, which feeds
each block the float outputs of the block before, the blocks here see the outputs of the
already quantized blocks (the same driver as GPTQ).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .activations import channel_stats
from .awq_search import clip_to, quantize_fp16, search_clip, search_scale
from . import calibration
from .blockwise import check_block_targets, check_calibration, run_block, sequential_blocks
from .fold import fold_group
from .hooks import record_inputs
from .input_stats import InputStats
from .methods import GridConfig, quantize_as, register
from .quant_linear import QuantLinear
from .quantize import check_group_size, check_group_size_fits
from .swap import Selection, find_linears, is_skipped
from .wiring import scale_groups, wiring_for


# ---------------------------------------------------------------- salience experiment

def salient_channels(mean_abs: torch.Tensor, fraction: float = 0.01) -> torch.Tensor:
    """Indices of the ``max(1, round(fraction · in))`` input channels with the largest mean |x|."""
    k = _n_kept(mean_abs.numel(), fraction)
    return torch.topk(mean_abs.float(), k).indices


def random_channels(in_features: int, fraction: float = 0.01, generator: torch.Generator | None = None) -> torch.Tensor:
    """As many input channels as :func:`salient_channels` keeps, drawn uniformly at random."""
    return torch.randperm(in_features, generator=generator)[:_n_kept(in_features, fraction)]


def _n_kept(in_features: int, fraction: float) -> int:
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1] (0.01 keeps 1% of the channels), got {fraction!r}.")
    return 0 if fraction == 0 else max(1, round(fraction * in_features))


def keep_columns(W: torch.Tensor, channels: torch.Tensor, n_bits: int = 3, group_size=64,
                 symmetric: bool = False) -> torch.Tensor:
    """W_hat [out, in]: RTN of the whole W (float16 scales), then the ``channels`` columns put back in FP16.

    The grid of each group is fitted on all its weights, kept ones included, as a
    mixed-precision layer that stores those columns apart would not; the experiment
    measures what keeping them exact is worth.
    """
    check_group_size(group_size, tuple(W.shape))
    W_hat = quantize_fp16(W.detach(), n_bits, group_size, symmetric).dequantize()  # [out, in]
    W_hat[:, channels] = W.detach()[:, channels].to(torch.float16).float()
    return W_hat.to(W.dtype)


def activation_stats(model: nn.Module, calib: torch.Tensor, skip=("lm_head",), batch_size: int = 8,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """``{linear name: mean |x| per input channel [in]}`` of the float model on ``calib``."""
    stats = channel_stats(model, check_calibration(calib), skip=tuple(skip), batch_size=batch_size, progress=progress)
    return {name: s.mean_abs for name, s in stats.items()}


@torch.no_grad()
def apply_salience(model: nn.Module, mean_abs: dict[str, torch.Tensor], mode: str = "top", fraction: float = 0.01,
                   n_bits: int = 3, group_size=64, symmetric: bool = False, skip=("lm_head",),
                   seed: int = 0) -> nn.Module:
    """Replace every linear weight (not in ``skip``) by :func:`keep_columns`' W_hat, in place; return ``model``.

    mode: "top" keeps the most active ``fraction`` of input channels, "random" as many at
    random (seeded), "none" keeps nothing (plain RTN). The weights stay dense float tensors.
    """
    if mode not in ("top", "random", "none"):
        raise ValueError(f"mode must be 'top', 'random' or 'none', got {mode!r}.")
    layers = find_linears(model, tuple(skip))
    missing = [name for name, _ in layers if name not in mean_abs]
    if missing:
        raise ValueError(f"No activation statistics for {missing[:3]}; collect them with activation_stats first.")
    check_group_size_fits(layers, group_size)
    generator = torch.Generator().manual_seed(seed)
    for name, linear in layers:
        W = linear.weight
        if mode == "top":
            channels = salient_channels(mean_abs[name], fraction)
        elif mode == "random":
            channels = random_channels(W.shape[1], fraction, generator)
        else:
            channels = torch.empty(0, dtype=torch.long)
        W.copy_(keep_columns(W, channels.to(W.device), n_bits, group_size, symmetric))
    return model


# ---------------------------------------------------------------- the whole model

@dataclass(frozen=True)
class AWQConfig(GridConfig):
    """Settings of AWQ.

    n_bits, group_size, symmetric, skip: as in ``methods.GridConfig`` (group_size: an int or "channel")
    n_grid:     α grid 0, 1/n_grid, ..., (n_grid−1)/n_grid of the scale search
    clip:       run the clip search after scaling
    clip_grid, max_shrink: clip ratios 1, 1 − 1/clip_grid, ... above 1 − max_shrink
    clip_skip:  name fragments of linears never clipped (the reference skips q and k: their
                output error misses the attention's product of the two)
    batch_size: calibration sequences per forward chunk
    """

    n_grid: int = 20
    clip: bool = True
    clip_grid: int = 20
    max_shrink: float = 0.5
    clip_skip: tuple[str, ...] = ("q_proj", "k_proj")
    batch_size: int = 8
    needs_calib = True  # a class constant, not a setting

    def __post_init__(self):
        super().__post_init__()
        if self.group_size == "tensor":
            raise ValueError("AWQ needs group_size as an int or 'channel' (the clip search works per group), "
                             "got 'tensor'.")
        for field in ("n_grid", "clip_grid", "batch_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive int, got {value!r}.")
        if not isinstance(self.clip, bool):
            raise ValueError(f"clip must be True or False, got {self.clip!r}.")
        if isinstance(self.max_shrink, bool) or not isinstance(self.max_shrink, (int, float)) \
                or not 0 < self.max_shrink < 1:
            raise ValueError(f"max_shrink must be in (0, 1) (0.5 is the reference's), got {self.max_shrink!r}.")
        if isinstance(self.clip_skip, str) or not all(isinstance(s, str) and s for s in self.clip_skip):
            raise ValueError(f"clip_skip must be a tuple of non-empty name fragments, got {self.clip_skip!r}.")
        object.__setattr__(self, "clip_skip", tuple(self.clip_skip))


@register(AWQConfig)
def _apply(model: nn.Module, config: AWQConfig, *, calib, select: Selection, progress: bool,
           on_group=None) -> None:
    """AWQ every selected linear, block by block (the preamble ran in ``methods.quantize``)."""
    calib_ids = check_calibration(calib)
    wiring = wiring_for(model)
    check_block_targets(model, wiring, select, "AWQ")
    q_args = (config.n_bits, config.group_size, config.symmetric)
    stage_of = {local: stage for stage in wiring.sequential for local in stage}
    for index, block, inputs in sequential_blocks(model, calib_ids, config.batch_size, progress,
                                                  f"AWQ {config.n_bits}-bit"):
        prefix = f"{wiring.blocks}.{index}."
        hooked = {stage: block.get_submodule(stage[0]) for stage in wiring.sequential}
        stats = {stage: InputStats(m.in_features, m.weight.device) for stage, m in hooked.items()}
        with record_inputs(hooked, lambda stage, x: stats[stage].add(x)):
            run_block(block, inputs)
        C = {stage: st.C for stage, st in stats.items()}  # [in, in] each: the input's second moment
        # 1. search every group's scale on the block's float weights, then fold them all
        chosen = []
        for group in scale_groups(block, wiring):
            names = [local for local in group.linears if select(prefix + local)]
            if not names:
                continue
            stage = stage_of[group.linears[0]]
            result = search_scale([block.get_submodule(n).weight for n in names], C[stage],
                                  stats[stage].mean_abs, *q_args, n_grid=config.n_grid)
            if on_group is not None:
                on_group(prefix + group.prev, result.alphas, result.errors, result.best_alpha)
            chosen.append((group, stage, result.scale))
        for group, stage, s in chosen:
            fold_group(block, group, s)
            C[stage] = C[stage] / (s[:, None] * s[None, :])  # the input is now X / s
        # 2. clip each linear's scaled weight, quantize it and swap in a QuantLinear
        for stage in wiring.sequential:
            for local in stage:
                if not select(prefix + local):
                    continue
                linear = block.get_submodule(local)
                W = linear.weight.detach().float()  # [out, in]
                if config.clip and not is_skipped(local, config.clip_skip):
                    ratio = search_clip(W, C[stage], *q_args, n_grid=config.clip_grid, max_shrink=config.max_shrink)
                    W = clip_to(W, ratio, config.group_size)
                qt = quantize_fp16(W, *q_args)
                block.set_submodule(local, QuantLinear.from_quantized(qt, linear.bias))
    calibration.record(model, calib)  # what calibrated it, saved with the model


def quantize_model(model: nn.Module, config: AWQConfig | None = None, *, calib: torch.Tensor | None = None,
                   progress: bool = True, on_group=None, only=None) -> nn.Module:
    """AWQ every linear inside the decoder blocks (not in ``config.skip``; in ``only`` if given),
    block by block, in place; return ``model``.

    calib:    token ids [n_samples, seq_len] (``data.calibration_batches``) or a
              ``calibration.CalibrationSet``; required. Recorded as ``model.quant_calibration``
    on_group: optional ``on_group(name, alphas, errors, best_alpha)`` after each scale group's
              search (name: the producer's qualified name), e.g. to plot error against α
    """
    return quantize_as(AWQConfig, model, config, calib=calib, progress=progress, on_group=on_group, only=only)
