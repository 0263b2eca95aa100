"""Module swap: replace a model's ``nn.Linear`` layers in place, by qualified name.

Every post-training method in the course ends the same way: walk the model, and put a
new module (a ``QuantLinear``, a mixed-precision layer ...) where each ``nn.Linear`` was.
``skip`` holds name fragments; a layer whose qualified name contains one is left alone
(``("lm_head",)`` keeps the output head, which SmolLM2 ties to the embedding). A
:class:`Selection` adds ``only`` (fragments or a predicate on the name) to that; every
function here takes either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import run_log


def matches(name: str, fragments: tuple[str, ...]) -> bool:
    """True when one of ``fragments`` occurs in the qualified name ``name`` (substring match)."""
    return any(fragment in name for fragment in fragments)


def is_skipped(name: str, skip: tuple[str, ...]) -> bool:
    """True when a fragment of ``skip`` occurs in the qualified name ``name``."""
    return matches(name, skip)


def check_skip(skip) -> tuple[str, ...]:
    """``skip`` as a tuple of non-empty name fragments, or a ValueError saying what is wrong."""
    if isinstance(skip, str) or not all(isinstance(s, str) for s in skip):
        raise ValueError(f"skip must be a tuple of layer-name fragments such as ('lm_head',), got {skip!r}.")
    if "" in skip:
        raise ValueError("skip contains an empty string, which matches every layer; remove it.")
    return tuple(skip)


@dataclass(frozen=True)
class Selection:
    """Which linears a method touches: not ``skip``ped, and picked by ``only`` when it is given.

    skip: name fragments to leave alone.  only: None (every layer), name fragments (a layer's
    qualified name must contain one, e.g. ``("mlp",)``), or a predicate ``only(name) -> bool``.
    """

    skip: tuple[str, ...] = ()
    only: Union[tuple[str, ...], Callable[[str], bool], None] = None

    def __post_init__(self):
        object.__setattr__(self, "skip", check_skip(self.skip))
        if self.only is not None and not callable(self.only):
            if isinstance(self.only, str) or not all(isinstance(s, str) and s for s in self.only):
                raise ValueError(f"only must be a tuple of non-empty name fragments such as ('mlp',), or a function "
                                 f"name -> bool, got {self.only!r}.")
            object.__setattr__(self, "only", tuple(self.only))

    def __call__(self, name: str) -> bool:
        if is_skipped(name, self.skip):
            return False
        if self.only is None:
            return True
        return bool(self.only(name)) if callable(self.only) else matches(name, self.only)


Select = Union[Selection, tuple[str, ...]]  # a Selection, or skip fragments alone


def as_selection(select: Select) -> Selection:
    """``select`` as a :class:`Selection` (a tuple is read as ``skip``)."""
    return select if isinstance(select, Selection) else Selection(skip=select)


def find_linears(model: nn.Module, skip: Select = ()) -> list[tuple[str, nn.Linear]]:
    """``(qualified name, layer)`` of every ``nn.Linear`` not skipped (skip: fragments, or a Selection), in
    module order."""
    select = as_selection(skip)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and select(name)]


def replace_linears(
    model: nn.Module,
    make_layer: Callable[[str, nn.Linear], nn.Module | None],
    skip: Select = (),
    progress: bool = True,
    desc: str = "replacing linear layers",
) -> list[str]:
    """Replace each ``nn.Linear`` not skipped (skip: fragments, or a Selection) by ``make_layer(name, linear)``,
    in place.

    make_layer may return None to keep that layer. Returns the names that were replaced.
    The targets are listed before any is replaced, so new modules are never revisited.
    """
    replaced = []
    for name, linear in tqdm(find_linears(model, skip), desc=desc, disable=not progress):
        new = make_layer(name, linear)
        if new is None:
            continue
        model.set_submodule(name, new)
        replaced.append(name)
    return replaced


def map_linear_weights(
    model: nn.Module,
    transform: Callable[[torch.Tensor], torch.Tensor],
    skip: tuple[str, ...] = ("lm_head",),
    progress: bool = True,
) -> list[str]:
    """Replace each linear weight ``W`` by ``transform(W)`` in place (same shape and dtype).

    The quickest way to try a quantizer on a whole model: pass ``lambda W:
    dequantize(*quantize(W))`` and the model computes with W_hat, as a ``QuantLinear``
    would, without packing. Returns the names of the layers changed.
    """
    changed = []
    with torch.no_grad():
        for name, linear in tqdm(find_linears(model, skip), desc="transforming weights", disable=not progress):
            W = linear.weight
            W_new = transform(W.detach().clone())
            if not isinstance(W_new, torch.Tensor) or W_new.shape != W.shape:
                raise ValueError(
                    f"transform must return a tensor shaped like the weight {tuple(W.shape)} of {name}, "
                    f"got {getattr(W_new, 'shape', type(W_new))}: return the dequantized weight W_hat."
                )
            W.copy_(W_new.to(W.dtype))
            changed.append(name)
    run_log.record("model quantization")
    return changed

