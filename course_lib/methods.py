"""One entry point for every method: ``quantize(model, config, calib=..., only=...)``.

    from course_lib.methods import quantize
    from course_lib.gptq import GPTQConfig
    quantize(model, GPTQConfig(n_bits=4, group_size=64), calib=batches, only=("mlp",))

Each method module registers the function that applies it under its config type, so
``quantize`` dispatches on ``type(config)``; importing the module that defines a config is
what registers its method, so any config you can build is one ``quantize`` knows.

    @methods.register(GPTQConfig)
    def _apply(model, config, *, calib, select, progress, **options): ...

What every method shares happens here, once, before anything is modified: the config's
type, which linears (``config.skip`` and ``only``, as a ``swap.Selection``), that at least
one layer is selected, that ``group_size`` divides each selected layer (configs that have
one) and that a method that needs data (``config.needs_calib``) got some (a config may say
how to give it in ``calib_hint``). The per-method
``quantize_model`` functions the notebooks call go through :func:`quantize_as`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from . import run_log
from .quantize import GridSpec, check_group_size_fits
from .swap import Selection, check_skip, find_linears

Method = Callable[..., None]  # apply(model, config, *, calib, select, progress, **options)
_METHODS: dict[type, Method] = {}

CALIB_HINT = ("pass calib=data.calibration_batches(tokenizer, 'wiki', n_samples=128, seq_len=512), "
              "or a calibration.build(...) set")


@dataclass(frozen=True)
class GridConfig:
    """The fields every weight-grid method (RTN, GPTQ, AWQ) starts its config with.

    n_bits, group_size, symmetric: the grid (see ``quantize.GridSpec``, which checks them)
    skip: name fragments of linear layers to keep in full precision
    """

    n_bits: int = 4
    group_size: int | str = 64
    symmetric: bool = False
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self):
        self.grid  # noqa: B018 -- building the GridSpec checks the three fields
        object.__setattr__(self, "skip", check_skip(self.skip))

    @property
    def grid(self) -> GridSpec:
        """The grid as one value (scales stored in float16, as QuantLinear stores them)."""
        return GridSpec(self.n_bits, self.group_size, self.symmetric)


def register(config_type: type) -> Callable[[Method], Method]:
    """Decorator: ``apply`` quantizes a model for configs of ``config_type``."""
    def decorate(apply: Method) -> Method:
        _METHODS[config_type] = apply
        return apply
    return decorate


def registered() -> list[str]:
    """The config types ``quantize`` knows now (their modules have been imported)."""
    return sorted(t.__name__ for t in _METHODS)


def quantize(model: nn.Module, config, *, calib=None, only=None, progress: bool = True, **options) -> nn.Module:
    """Quantize ``model`` in place with the method ``config`` belongs to; return ``model``.

    calib:   calibration data, for methods that need it (token ids [n_samples, seq_len] or a
             CalibrationSet; SmoothQuant and static W8A8 also take activation statistics)
    only:    None (every linear outside config.skip), name fragments such as ("mlp",), or a
             function name -> bool; combined with config.skip
    options: passed to the method (GPTQ's ``on_layer``, AWQ's ``on_group``)
    """
    apply = _METHODS.get(type(config))
    if apply is None:
        raise ValueError(f"No method is registered for {type(config).__name__}; configs known now: "
                         f"{registered()} (a method registers when its module is imported, e.g. course_lib.gptq).")
    select = Selection(config.skip, only)
    targets = find_linears(model, select)
    if not targets:
        raise ValueError(f"No linear layer is selected (skip={config.skip!r}, only={only!r}); nothing to quantize.")
    if hasattr(config, "group_size"):
        check_group_size_fits(targets, config.group_size)
    if getattr(config, "needs_calib", False) and calib is None:
        hint = getattr(config, "calib_hint", f"{type(config).__name__} needs calibration data: {CALIB_HINT}.")
        raise ValueError(f"calib=None: {hint}")
    apply(model, config, calib=calib, select=select, progress=progress, **options)
    run_log.record("model quantization")
    return model


def quantize_as(config_type: type, model: nn.Module, config: Any = None, **kwargs) -> nn.Module:
    """:func:`quantize` for one method: ``config`` (None: the defaults) must be a ``config_type``."""
    config = config_type() if config is None else config
    if not isinstance(config, config_type):
        raise ValueError(f"config must be a {config_type.__name__}, got {type(config).__name__}; "
                         f"or call methods.quantize, which takes any method's config.")
    return quantize(model, config, **kwargs)
