"""Probes: statistics of a model's layer inputs, measured by running it (no quantization).

* :func:`layer_statistics` -- AWQ's input statistics of chosen linears after the first c
  calibration windows, for several c in one forward pass (notebook 08: how many samples);
* :func:`hessians_by_position` -- GPTQ's H of every linear split into the first token of a
  window and the rest (notebook 05: the attention sink).
"""
from __future__ import annotations

import copy

import torch

from .hooks import record_inputs, run_batches, stop_after
from .input_stats import HessianAccumulator, InputStats
from .swap import find_linears


@torch.no_grad()
def layer_statistics(model, names: list[str], input_ids, checkpoints: list[int], batch_size: int = 8
                     ) -> dict[str, dict[int, InputStats]]:
    """Input statistics (H = XᵀX / n and mean |x|) of the linears ``names``, after the first
    ``c`` windows of ``input_ids`` for every ``c`` in ``checkpoints``: one forward pass, no quantization.

    The forward stops once the last hooked linear has run, so statistics of early layers are
    cheap. Returns {name: {c: InputStats}}; each snapshot is independent of the later ones.
    """
    input_ids = getattr(input_ids, "input_ids", input_ids)  # a calibration.CalibrationSet or the ids
    checkpoints = sorted(set(checkpoints))
    if not checkpoints or checkpoints[0] < 1 or checkpoints[-1] > input_ids.shape[0]:
        raise ValueError(f"checkpoints must be window counts in 1..{input_ids.shape[0]}, got {checkpoints}.")
    modules = {name: model.get_submodule(name) for name in names}
    order = [name for name, _ in model.named_modules() if name in modules]  # forward order
    stats = {name: InputStats(m.in_features, m.weight.device) for name, m in modules.items()}
    snapshots: dict[str, dict[int, InputStats]] = {name: {} for name in names}

    with record_inputs(modules, lambda name, x: stats[name].add(x)), stop_after(modules[order[-1]]):
        done = 0
        for checkpoint in checkpoints:
            run_batches(model, input_ids[done:checkpoint], batch_size, progress=False)  # each pass stops early
            done = checkpoint
            for name in names:
                snapshots[name][checkpoint] = copy.deepcopy(stats[name])
    return snapshots


@torch.no_grad()
def hessians_by_position(model, input_ids: torch.Tensor, skip=("lm_head",), batch_size: int = 4
                         ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{linear name: (H of position 0, H of positions 1..)}`` of ``model``'s own inputs on ``input_ids``.

    input_ids [windows, seq_len]. The first token of a window is where attention "sinks" form: it
    is 1 token in seq_len of a calibration set, yet every later token reads it. Splitting H shows
    how a method's output error falls on it and on the rest.
    """
    if input_ids.dim() != 2 or input_ids.shape[1] < 2:
        raise ValueError(f"input_ids must be [windows, seq_len >= 2] token ids, got shape {tuple(input_ids.shape)}.")
    layers = dict(find_linears(model, tuple(skip)))
    first = {name: HessianAccumulator(layer.in_features) for name, layer in layers.items()}
    rest = {name: HessianAccumulator(layer.in_features) for name, layer in layers.items()}

    def add(name, x):  # x [batch, seq, in]
        first[name].add(x[:, :1])
        rest[name].add(x[:, 1:])

    with record_inputs(layers, add):
        run_batches(model, input_ids, batch_size, progress=False)
    return {name: (first[name].H, rest[name].H) for name in layers}
