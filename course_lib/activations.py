"""Activation capture: what flows *into* (and out of) chosen modules on calibration data.

Weights sit in the state dict; activations exist only while the model runs. A forward
hook sees each call of a module, ``hook(module, args, output)``, so calibration is: add
hooks, run batches, remove the hooks. For a linear layer ``y = x Wᵀ`` the input ``x`` is
``args[0]``, shaped [batch, seq, in]; every hook here flattens it to rows of tokens,

    X = x.reshape(-1, in)          # [n_tokens, in]: one row per token, one column per input channel

Two ways to keep what the hooks see:

* :func:`capture` stores the tensors themselves (inputs, and outputs if asked), for the
  few modules you are studying. Memory grows with tokens x channels x modules.
* :func:`channel_stats` keeps cheap running statistics per input channel ``j`` of every
  linear layer, without storing X:

      absmax[j]        = max_t |X[t, j]|                (SmoothQuant's and static scales' input)
      mean_abs[j]      = mean_t |X[t, j]|               (AWQ's salience)
      outlier_count[j] = #{t : |X[t, j]| >= threshold}  (LLM.int8's outlier features, threshold 6)
      min, max         = min_t,j X[t, j], max_t,j X[t, j]  (per-tensor range)

The hooks come from ``course_lib.hooks`` (``input_hooks``, ``run_batches``), which removes them
also when a forward pass raises; the accumulators from ``course_lib.input_stats``. Nothing is
registered at import time.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from .hooks import input_hooks, run_batches, select_modules
from .input_stats import OUTLIER_THRESHOLD, RunningStats, Stats
from .swap import find_linears

# ---------------------------------------------------------------- storing everything

@dataclass(frozen=True)
class Captured:
    """What one module saw: inputs [n_tokens, in] and, if asked, outputs [n_tokens, out] (float32, CPU)."""

    inputs: torch.Tensor
    outputs: torch.Tensor | None


def capture(
    model: nn.Module, targets, batches, *, outputs: bool = False, max_tokens: int | None = None,
    batch_size: int = 4, progress: bool = True,
) -> dict[str, Captured]:
    """Run ``batches`` through ``model`` and return every input (and output) of the selected modules.

    targets: module names or a predicate ``(name, module) -> bool`` (see :func:`select_modules`).
    max_tokens: keep at most this many token rows per module (None: all of them).
    """
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive int or None, got {max_tokens!r}.")
    xs: dict[str, list[torch.Tensor]] = {}
    ys: dict[str, list[torch.Tensor]] = {}

    def on_call(name: str, X: torch.Tensor, Y: torch.Tensor | None) -> None:
        kept = sum(len(t) for t in xs.get(name, []))
        room = X.shape[0] if max_tokens is None else max(0, max_tokens - kept)
        if room == 0:
            return
        xs.setdefault(name, []).append(X[:room].float().cpu())
        if outputs:
            if Y is None:
                raise ValueError(f"Module {name!r} returns no tensor; capture it with outputs=False.")
            ys.setdefault(name, []).append(Y[:room].float().cpu())

    with input_hooks(model, targets, on_call):
        run_batches(model, batches, batch_size, progress, desc="capture")
    return {
        name: Captured(torch.cat(xs[name]), torch.cat(ys[name]) if outputs else None)  # [n_tokens, in], [n_tokens, out]
        for name in xs
    }


def module_stats(
    model: nn.Module, targets, batches, *, threshold: float = OUTLIER_THRESHOLD, batch_size: int = 4,
    progress: bool = True,
) -> dict[str, Stats]:
    """:class:`Stats` of the inputs of the modules selected by ``targets``, without storing them."""
    running: dict[str, RunningStats] = {}

    def on_call(name: str, X: torch.Tensor, Y) -> None:
        running.setdefault(name, RunningStats(threshold)).update(X)

    with input_hooks(model, targets, on_call):
        run_batches(model, batches, batch_size, progress, desc="activation statistics")
    return {name: r.result() for name, r in running.items()}


def channel_stats(
    model: nn.Module, batches, *, skip: tuple[str, ...] = ("lm_head",), threshold: float = OUTLIER_THRESHOLD,
    batch_size: int = 4, progress: bool = True,
) -> dict[str, Stats]:
    """``{linear name: Stats}`` of the input of every ``nn.Linear`` not in ``skip``.

    The statistics AWQ (``mean_abs``), SmoothQuant and static activation scales (``absmax``)
    and LLM.int8's outlier analysis (``outlier_count``) start from.
    """
    names = [name for name, _ in find_linears(model, skip)]
    if not names:
        raise ValueError(f"The model has no nn.Linear outside skip={skip!r}; nothing to measure.")
    return module_stats(model, names, batches, threshold=threshold, batch_size=batch_size, progress=progress)


# ---------------------------------------------------------------- tables

def layer_type(name: str) -> str:
    """The last part of a qualified name: ``model.layers.3.mlp.down_proj`` -> ``down_proj``."""
    return name.rsplit(".", 1)[-1]


def range_table(model: nn.Module, stats: dict[str, Stats]) -> list[dict]:
    """One row per layer type: the largest |X| its inputs reach against the largest |W| of its weights.

    Rows: ``{"layer_type", "n_layers", "act_absmax", "act_mean_abs", "weight_absmax", "ratio"}``
    (maxima over every layer of that type; ``ratio = act_absmax / weight_absmax``).
    """
    rows: dict[str, dict] = {}
    for name, s in stats.items():
        W = model.get_submodule(name).weight
        row = rows.setdefault(layer_type(name), {"layer_type": layer_type(name), "n_layers": 0, "act_absmax": 0.0,
                                                 "act_mean_abs": 0.0, "weight_absmax": 0.0})
        row["n_layers"] += 1
        row["act_absmax"] = max(row["act_absmax"], s.tensor_absmax)
        row["act_mean_abs"] = max(row["act_mean_abs"], float(s.mean_abs.mean()))
        row["weight_absmax"] = max(row["weight_absmax"], float(W.detach().abs().max()))
    for row in rows.values():
        row["ratio"] = row["act_absmax"] / row["weight_absmax"]
    return list(rows.values())


def outlier_map(stats: dict[str, Stats], names: Iterable[str]) -> torch.Tensor:
    """[len(names), in]: outlier counts of each named layer's input channels, stacked (a heatmap's rows)."""
    names = list(names)
    missing = [n for n in names if n not in stats]
    if missing:
        raise ValueError(f"No statistics for {missing[:3]}; collect them with channel_stats first.")
    widths = {stats[n].outlier_count.numel() for n in names}
    if len(widths) != 1:
        raise ValueError(f"The layers have different input widths {sorted(widths)}; stack one layer type at a time.")
    return torch.stack([stats[n].outlier_count for n in names])  # [n_layers, in]
