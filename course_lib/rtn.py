"""Round-to-nearest (RTN): quantize every linear weight on its own grid, no data needed.

    W_hat = Q(W) = (clamp(round(W / scale) + zero_point, ...) - zero_point) * scale

per group of ``group_size`` inputs; the baseline every later method (GPTQ, AWQ) must beat.
Like every method it runs through ``methods.quantize(model, RTNConfig(...))``; the
``quantize_model`` here is the same call for RTN configs only:

    quantize_model(model, RTNConfig(n_bits=4, group_size=64, symmetric=False))

``calib`` is accepted and ignored: RTN looks only at the weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .methods import GridConfig, quantize_as, register
from .quant_linear import QuantLinear
from .swap import Selection, replace_linears


@dataclass(frozen=True)
class RTNConfig(GridConfig):
    """Settings of round-to-nearest: the grid and ``skip`` of ``methods.GridConfig``, nothing more.

    n_bits:     2..8 bits per weight
    group_size: a positive int (inputs per group), "channel" (one scale per output row) or "tensor"
    symmetric:  True for absmax (no zero point), False for an integer zero point
    skip:       name fragments of linear layers to keep in full precision
    """


@register(RTNConfig)
def _apply(model: nn.Module, config: RTNConfig, *, calib, select: Selection, progress: bool) -> None:
    """Swap every selected ``nn.Linear`` for an RTN ``QuantLinear`` (``calib`` is not needed)."""
    def make_layer(name: str, linear: nn.Linear) -> QuantLinear:
        try:
            return QuantLinear.from_linear(linear, config.n_bits, config.group_size, config.symmetric)
        except ValueError as err:
            raise ValueError(f"Layer {name!r}: {err}") from err

    replace_linears(model, make_layer, select, progress=progress, desc=f"RTN {config.n_bits}-bit")


def quantize_model(model: nn.Module, config: RTNConfig | None = None, *, calib=None, progress: bool = True,
                   only=None) -> nn.Module:
    """Swap every ``nn.Linear`` not in ``config.skip`` (and in ``only``, if given) for an RTN
    ``QuantLinear``, in place; return ``model``. ``calib`` is ignored (RTN needs no data).

    The group size is checked against every layer before anything is swapped, so a bad
    setting leaves the model untouched.
    """
    return quantize_as(RTNConfig, model, config, calib=calib, progress=progress, only=only)
