"""SmoothQuant (Xiao et al., 2023): move the activations' outliers into the weights, then W8A8.

Activations are hard to quantize because a few input channels j carry values far larger
than the rest; weights are easy. A per-input-channel factor ``s`` divides the activations
and multiplies the weights, which leaves the product unchanged:

    Y = X Wᵀ = (X diag(s)⁻¹) (W diag(s))ᵀ

    s_j = max|X_j|^α / max|W_j|^(1-α)        α in [0, 1]: how much difficulty moves to W

(max|W_j| over every linear that reads X, so one s serves them all). α = 0 flattens every
weight column to the same max (s_j = 1/max|W_j|: it rescales the activations too, by max|W_j|);
α = 1 flattens every activation channel to the same max; 0.5 splits
the range evenly (max|X_j / s_j| = max|W_j s_j| = sqrt(max|X_j| max|W_j|)).

``diag(s)⁻¹`` costs nothing at run time: it is folded into the op that produces X, named by
the architecture's wiring (``wiring.py``), with the same fold as AWQ's (``fold.py``): a
norm's weight (and bias) is divided by ``s``, or a previous linear's output rows are. The
float model's outputs do not change (up to float rounding); only then is it quantized with
``w8a8.quantize_linears``.

    quantize_model(model, SmoothQuantConfig(alpha=0.5), calib=calibration_batches(tok, ...))
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .fold import fold_group
from .input_stats import Stats
from .methods import quantize_as, register
from .quantize import check_n_bits
from .swap import Select, Selection, as_selection, check_skip
from .w8a8 import ACT_SCHEMES, WEIGHT_SCHEMES, W8A8Config, quantize_linears, resolve_stats
from .wiring import decoder_blocks, scale_groups, wiring_for

EPS = 1e-5  # floor on max|X_j| and max|W_j|, as in the reference implementation: a dead channel gets no 0 or inf
FOLD_KINDS = ("norm", "linear")


def smoothing_factor(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """``s_j = max|X_j|^α / max|W_j|^(1-α)``, [in] float32 (both maxima floored at 1e-5)."""
    if act_absmax.shape != weight_absmax.shape or act_absmax.dim() != 1:
        raise ValueError(f"act_absmax and weight_absmax must both be [in], got {tuple(act_absmax.shape)} "
                         f"and {tuple(weight_absmax.shape)}.")
    x, w = act_absmax.float().clamp(min=EPS), weight_absmax.float().clamp(min=EPS)
    return x.pow(alpha) / w.pow(1 - alpha)  # [in]


def round_to_power_of_two(s: torch.Tensor) -> torch.Tensor:
    """``2**round(log2 s)``: the nearest power of two (within a factor sqrt 2 of s).

    Multiplying or dividing a float by a power of two only changes its exponent, so a fold
    with these factors is exact: the float model's outputs stay bit for bit the same.
    """
    return torch.exp2(torch.round(torch.log2(s)))


def smoothing_factor_reference(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Slow reference for :func:`smoothing_factor`: one channel at a time, in Python floats."""
    return torch.tensor([max(float(x), EPS) ** alpha / max(float(w), EPS) ** (1 - alpha)
                         for x, w in zip(act_absmax, weight_absmax)], dtype=torch.float32)


def weight_absmax_per_input(linears: list[nn.Linear]) -> torch.Tensor:
    """max|W_j| over the rows of every linear in ``linears`` (they share one input): [in]."""
    W = torch.cat([linear.weight.detach().float() for linear in linears], dim=0)  # [sum of out, in]
    return W.abs().amax(dim=0)  # [in]


def smooth_model(model: nn.Module, stats: dict[str, Stats], alpha: float = 0.5,
                 fold_into: tuple[str, ...] = FOLD_KINDS, skip: Select = (),
                 power_of_two: bool = False) -> dict[str, torch.Tensor]:
    """Fold SmoothQuant's factors into every scale group of every block, in place.

    stats: the input statistics of the *unsmoothed* model (``activations.channel_stats``);
    fold_into: the producer kinds to use ("norm", "linear"). The groups come from the
    architecture's wiring (``wiring.scale_groups`` leaves out folds that are not exact).
    skip: fragments (or a ``swap.Selection``); a group whose consumers are all unselected is left
    alone; an unselected consumer in a smoothed group is still rescaled (the fold must stay
    exact) but needs no statistics.
    power_of_two: round each s_j to a power of two, so the fold is exact in floating point
    (otherwise it changes the outputs by float rounding: each weight is rounded once).
    Returns ``{linear name: s}`` for every consumer that was smoothed.
    """
    wiring, select = wiring_for(model), as_selection(skip)
    factors: dict[str, torch.Tensor] = {}
    for i, block in enumerate(decoder_blocks(model)):
        prefix = f"{wiring.blocks}.{i}."
        for group in scale_groups(block, wiring):
            if group.prev_kind not in fold_into:
                continue
            names = [prefix + name for name in group.linears]
            measured = [name for name in names if select(name)]
            if not measured:
                continue
            missing = [name for name in measured if name not in stats]
            if missing:
                raise ValueError(f"No activation statistics for {missing[0]!r}; collect them with "
                                 "activations.channel_stats(model, calib) on the unsmoothed model.")
            act_absmax = torch.stack([stats[name].absmax for name in measured]).amax(dim=0)  # [in]; one input
            linears = [block.get_submodule(name) for name in group.linears]
            s = smoothing_factor(act_absmax, weight_absmax_per_input(linears), alpha)  # [in]
            s = round_to_power_of_two(s) if power_of_two else s
            fold_group(block, group, s)
            factors.update({name: s for name in names})
    return factors


def smoothed_input_absmax(stats: dict[str, Stats], factors: dict[str, torch.Tensor]) -> dict[str, float]:
    """max|X / s| per layer after smoothing, from the statistics measured before it:
    ``max_j absmax_j / s_j`` (layers without a factor keep their tensor absmax)."""
    return {name: float((st.absmax / factors[name]).max()) if name in factors else st.tensor_absmax
            for name, st in stats.items()}


@dataclass(frozen=True)
class SmoothQuantConfig:
    """Settings of SmoothQuant.

    alpha:         migration strength in [0, 1] (0.5 by default; larger moves more into W)
    act_scheme:    "per_token" (dynamic) or "per_tensor" (static, SmoothQuant's fastest setting)
    weight_scheme: "per_channel" or "per_tensor"
    w_bits/a_bits: 2..8 (8 and 8 for W8A8)
    fold_into:     producer kinds to fold into: ("norm", "linear") or one of them
    power_of_two:  round s to powers of two (an exact fold; s moves by at most a factor sqrt 2)
    skip:          name fragments of linear layers to keep in full precision (neither smoothed nor quantized)
    """

    alpha: float = 0.5
    act_scheme: str = "per_token"
    weight_scheme: str = "per_channel"
    w_bits: int = 8
    a_bits: int = 8
    fold_into: tuple[str, ...] = FOLD_KINDS
    power_of_two: bool = False
    skip: tuple[str, ...] = ("lm_head",)
    needs_calib = True  # class constants, not settings
    calib_hint = ("SmoothQuant needs activation statistics: pass calib=data.calibration_batches(tokenizer, "
                  "n_samples=..., seq_len=...) or calib=activations.channel_stats(model, batches).")

    def __post_init__(self):
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or not 0 <= a <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {a!r}; 0.5 is the usual start, sweep 0.3..0.9.")
        if self.act_scheme not in ACT_SCHEMES or self.weight_scheme not in WEIGHT_SCHEMES:
            raise ValueError(f"act_scheme must be in {ACT_SCHEMES} and weight_scheme in {WEIGHT_SCHEMES}, got "
                             f"{self.act_scheme!r} and {self.weight_scheme!r}.")
        check_n_bits(self.w_bits)
        check_n_bits(self.a_bits)
        fold = self.fold_into
        if isinstance(fold, str) or not fold or any(k not in FOLD_KINDS for k in fold):
            raise ValueError(f"fold_into must be a non-empty tuple from {FOLD_KINDS}, got {fold!r}.")
        object.__setattr__(self, "fold_into", tuple(fold))
        if not isinstance(self.power_of_two, bool):
            raise ValueError(f"power_of_two must be True or False, got {self.power_of_two!r}.")
        object.__setattr__(self, "skip", check_skip(self.skip))

    def w8a8(self) -> W8A8Config:
        """The W8A8 settings applied after smoothing."""
        return W8A8Config(self.act_scheme, self.weight_scheme, self.w_bits, self.a_bits, self.skip)


@register(SmoothQuantConfig)
def _apply(model: nn.Module, config: SmoothQuantConfig, *, calib, select: Selection, progress: bool) -> None:
    """Smooth with the calibration statistics, then swap the selected linears for ``W8A8Linear``."""
    stats = resolve_stats(model, calib, select, progress)
    factors = smooth_model(model, stats, config.alpha, config.fold_into, select, config.power_of_two)
    quantize_linears(model, config.w8a8(), smoothed_input_absmax(stats, factors), select, progress)


def quantize_model(model: nn.Module, config: SmoothQuantConfig | None = None, *, calib=None,
                   progress: bool = True, only=None) -> nn.Module:
    """Smooth ``model`` in place with its calibration statistics, then swap its linears (not in
    ``config.skip``; in ``only`` if given) for ``W8A8Linear`` layers; return ``model``.

    calib (required): token ids [n_samples, seq_len] from ``data.calibration_batches``, or
    the dict ``activations.channel_stats`` returned for this (unsmoothed) model.
    """
    return quantize_as(SmoothQuantConfig, model, config, calib=calib, progress=progress, only=only)
