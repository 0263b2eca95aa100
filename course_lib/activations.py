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

Hooks are always removed, also when a forward pass raises (:func:`input_hooks` is a
context manager with ``try/finally``). Nothing is registered at import time.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from .swap import find_linears

OUTLIER_THRESHOLD = 6.0  # LLM.int8 (Dettmers et al., 2022): a feature is an outlier when |x| >= 6


# ---------------------------------------------------------------- choosing modules

def select_modules(model: nn.Module, targets) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` pairs picked by ``targets``: a sequence of qualified names, or a
    predicate ``targets(name, module) -> bool``. Raises a ValueError when nothing matches
    or a name does not exist (with the closest real names)."""
    modules = dict(model.named_modules())
    if callable(targets):
        chosen = [(name, m) for name, m in modules.items() if targets(name, m)]
        if not chosen:
            raise ValueError("The predicate selected no module; check it against [n for n, _ in model.named_modules()].")
        return chosen
    if isinstance(targets, str):
        raise ValueError(f"targets must be a list of module names or a predicate, got the string {targets!r}; "
                         f"write [{targets!r}].")
    chosen = []
    for name in targets:
        if name not in modules:
            close = get_close_matches(name, list(modules), n=3)
            raise ValueError(f"The model has no module {name!r}. Closest names: {close or 'none'}.")
        chosen.append((name, modules[name]))
    if not chosen:
        raise ValueError("targets is empty; name at least one module.")
    return chosen


@contextmanager
def input_hooks(model: nn.Module, targets, on_call: Callable[[str, torch.Tensor, torch.Tensor], None]):
    """Within the block, ``on_call(name, X, Y)`` runs on every call of each selected module.

    X: the first positional input flattened to [n_tokens, in]; Y: the output flattened to
    [n_tokens, out] (None when the output is not a tensor). Both are detached. The hooks are
    removed on exit, whether the block finished or raised.
    """
    handles = []

    def make_hook(name: str):
        def hook(module, args, output):
            if not args or not isinstance(args[0], torch.Tensor):
                raise ValueError(f"Module {name!r} was called without a tensor as its first input; "
                                 "input hooks record only the first positional argument.")
            x = args[0].detach()
            X = x.reshape(-1, x.shape[-1])  # [batch, seq, in] -> [n_tokens, in]
            Y = output.detach().reshape(-1, output.shape[-1]) if isinstance(output, torch.Tensor) else None
            on_call(name, X, Y)
        return hook

    try:
        for name, module in select_modules(model, targets):
            handles.append(module.register_forward_hook(make_hook(name)))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def run_batches(model: nn.Module, batches, batch_size: int = 4, progress: bool = True, desc: str = "calibration") -> None:
    """Run ``model`` on token ids in eval mode under ``torch.no_grad()`` (training mode restored after).

    batches: a LongTensor [n_samples, seq_len] (as from ``data.calibration_batches``), cut into
    chunks of ``batch_size`` rows, or any iterable of [batch, seq_len] LongTensors.
    """
    if isinstance(batches, torch.Tensor):
        if batches.dim() != 2 or batches.dtype != torch.long:
            raise ValueError(f"batches must be token ids, a LongTensor [n_samples, seq_len]; got {batches.dtype} "
                             f"of shape {tuple(batches.shape)}. Use data.calibration_batches(tokenizer, ...).")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        batches = batches.split(batch_size)  # chunks of [<= batch_size, seq_len]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for ids in tqdm(batches, desc=desc, disable=not progress, leave=False):
                model(ids.to(device))
    finally:
        model.train(was_training)


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


# ---------------------------------------------------------------- running statistics

@dataclass(frozen=True)
class Stats:
    """Statistics of one module's input X [n_tokens, in] over all calibration tokens.

    absmax:        [in] float32, max_t |X[t, j]|
    mean_abs:      [in] float32, mean_t |X[t, j]|
    outlier_count: [in] int64, tokens with |X[t, j]| >= threshold
    min, max:      per-tensor extremes of X
    n_tokens:      rows seen;  threshold: the outlier threshold used
    """

    absmax: torch.Tensor
    mean_abs: torch.Tensor
    outlier_count: torch.Tensor
    min: float
    max: float
    n_tokens: int
    threshold: float

    @property
    def tensor_absmax(self) -> float:
        """max |X| over the whole tensor: what a per-tensor absmax scale is built from."""
        return max(abs(self.min), abs(self.max))

    @property
    def outlier_fraction(self) -> torch.Tensor:
        """[in]: fraction of tokens in which channel j reaches the threshold."""
        return self.outlier_count.double() / max(self.n_tokens, 1)


class RunningStats:
    """Accumulates :class:`Stats` one batch of rows at a time (sums in float64)."""

    def __init__(self, threshold: float = OUTLIER_THRESHOLD):
        self.threshold = threshold
        self.absmax = self.sum_abs = self.outlier_count = None
        self.min, self.max, self.n_tokens = float("inf"), float("-inf"), 0

    def update(self, X: torch.Tensor) -> None:
        """Fold in X [n_tokens, in]."""
        A = X.detach().abs().float()  # [n_tokens, in]
        absmax, sum_abs = A.amax(dim=0).cpu(), A.sum(dim=0, dtype=torch.float64).cpu()  # [in], [in]
        count = (A >= self.threshold).sum(dim=0).cpu()  # [in]
        if self.absmax is None:
            self.absmax, self.sum_abs, self.outlier_count = absmax, sum_abs, count
        else:
            if absmax.shape != self.absmax.shape:
                raise ValueError(f"Input width changed from {self.absmax.numel()} to {absmax.numel()} channels.")
            self.absmax = torch.maximum(self.absmax, absmax)
            self.sum_abs += sum_abs
            self.outlier_count += count
        self.min = min(self.min, float(X.min()))
        self.max = max(self.max, float(X.max()))
        self.n_tokens += X.shape[0]

    def result(self) -> Stats:
        if self.absmax is None:
            raise ValueError("No input was recorded; the module never ran on the calibration batches.")
        mean_abs = (self.sum_abs / self.n_tokens).float()
        return Stats(self.absmax.clone(), mean_abs, self.outlier_count.clone(), self.min, self.max,
                     self.n_tokens, self.threshold)


def stats_of(X: torch.Tensor, threshold: float = OUTLIER_THRESHOLD) -> Stats:
    """Slow reference for the running statistics: :class:`Stats` of one whole X [n_tokens, in]."""
    X = X.detach().float()
    return Stats(X.abs().amax(dim=0), X.abs().double().mean(dim=0).float(), (X.abs() >= threshold).sum(dim=0),
                 float(X.min()), float(X.max()), X.shape[0], threshold)


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
