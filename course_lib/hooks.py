"""Hooks: seeing what flows into (and out of) chosen modules while a model runs.

Weights sit in the state dict; activations exist only while the model runs. PyTorch calls a
*forward pre-hook* ``hook(module, args)`` before each call of a module and a *forward hook*
``hook(module, args, output)`` after it. Every measurement in the course (activation ranges,
Hessians, AWQ's statistics, calibration probes) is: put hooks on some modules, run batches,
remove the hooks. This module is the one place that does it:

* :func:`record_inputs` -- ``fn(name, x)`` with each call's input x as the module got it
  ([batch, seq, in] for a linear), for drivers that keep token positions (GPTQ, AWQ, probes);
* :func:`input_hooks` -- ``on_call(name, X, Y)`` with the input and output flattened to rows
  of tokens, ``X = x.reshape(-1, in)`` [n_tokens, in], for activation statistics;
* :func:`run_batches` -- run token ids through a model in eval mode without gradients;
* :class:`StopForward` and :func:`stop_after` -- end a forward pass early once the modules
  of interest have run.

Hooks are always removed on exit, also when the forward pass raises. Nothing is registered
at import time.
"""
from __future__ import annotations

from contextlib import contextmanager
from difflib import get_close_matches
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm


class StopForward(Exception):
    """Raised from a hook to end a forward pass early: whatever comes after is not needed."""


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
def _removed_on_exit(handles: list):
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def record_inputs(modules: dict[str, nn.Module], fn: Callable[[str, torch.Tensor], None]):
    """Within the block, every call of ``modules[name]`` calls ``fn(name, x)`` with its first input x
    (detached, as the module got it)."""
    def make_hook(name):
        def hook(module, args):
            fn(name, args[0].detach())
        return hook

    with _removed_on_exit([]) as handles:
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(make_hook(name)))
        yield


@contextmanager
def input_hooks(model: nn.Module, targets, on_call: Callable[[str, torch.Tensor, torch.Tensor], None]):
    """Within the block, ``on_call(name, X, Y)`` runs on every call of each selected module.

    X: the first positional input flattened to [n_tokens, in]; Y: the output flattened to
    [n_tokens, out] (None when the output is not a tensor). Both are detached.
    """
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

    with _removed_on_exit([]) as handles:
        for name, module in select_modules(model, targets):
            handles.append(module.register_forward_hook(make_hook(name)))
        yield model


@contextmanager
def stop_after(module: nn.Module):
    """Within the block, a forward pass raises :class:`StopForward` as soon as ``module`` has run."""
    def stop(module, args, output):
        raise StopForward

    with _removed_on_exit([module.register_forward_hook(stop)]):
        yield


def run_batches(model: nn.Module, batches, batch_size: int = 4, progress: bool = True, desc: str = "calibration") -> None:
    """Run ``model`` on token ids in eval mode under ``torch.no_grad()`` (training mode restored after).

    batches: a LongTensor [n_samples, seq_len] (as from ``data.calibration_batches``), cut into
    chunks of ``batch_size`` rows, or any iterable of [batch, seq_len] LongTensors. A forward
    pass that a hook ends with :class:`StopForward` counts as done.
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
                try:
                    model(ids.to(device))
                except StopForward:
                    pass
    finally:
        model.train(was_training)
