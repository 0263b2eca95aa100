"""Round-to-nearest (RTN): quantize every linear weight on its own grid, no data needed.

    W_hat = Q(W) = (clamp(round(W / scale) + zero_point, ...) - zero_point) * scale

per group of ``group_size`` inputs; the baseline every later method (GPTQ, AWQ) must beat.
One entry point with the signature all algorithms share:

    quantize_model(model, RTNConfig(n_bits=4, group_size=64, symmetric=False), calib=None)

``calib`` is accepted and ignored: RTN looks only at the weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .quant_linear import QuantLinear
from .quantize import GROUP_SIZE_NAMES, check_group_size_fits, check_n_bits
from .swap import find_linears, replace_linears


@dataclass(frozen=True)
class RTNConfig:
    """Settings of round-to-nearest.

    n_bits:     2..8 bits per weight
    group_size: a positive int (inputs per group), "channel" (one scale per output row) or "tensor"
    symmetric:  True for absmax (no zero point), False for an integer zero point
    skip:       name fragments of linear layers to keep in full precision
    """

    n_bits: int = 4
    group_size: int | str = 64
    symmetric: bool = False
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self):
        check_n_bits(self.n_bits)
        gs = self.group_size
        if isinstance(gs, str) and gs not in GROUP_SIZE_NAMES:
            raise ValueError(f"group_size must be a positive int, 'channel' or 'tensor', got {gs!r}.")
        if not isinstance(gs, str) and (isinstance(gs, bool) or not isinstance(gs, int) or gs <= 0):
            raise ValueError(f"group_size must be a positive int, 'channel' or 'tensor', got {gs!r}.")
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric must be True or False, got {self.symmetric!r}.")
        if isinstance(self.skip, str) or not all(isinstance(s, str) for s in self.skip):
            raise ValueError(f"skip must be a tuple of layer-name fragments such as ('lm_head',), got {self.skip!r}.")
        if "" in self.skip:
            raise ValueError("skip contains an empty string, which matches every layer; remove it.")
        object.__setattr__(self, "skip", tuple(self.skip))


def quantize_model(
    model: nn.Module, config: RTNConfig | None = None, *, calib=None, progress: bool = True
) -> nn.Module:
    """Swap every ``nn.Linear`` not in ``config.skip`` for an RTN ``QuantLinear``, in place; return ``model``.

    The group size is checked against every layer before anything is swapped, so a bad
    setting leaves the model untouched. ``calib`` is ignored (RTN needs no data).
    """
    config = config if config is not None else RTNConfig()
    if not isinstance(config, RTNConfig):
        raise ValueError(f"config must be an RTNConfig, got {type(config).__name__}.")
    check_group_size_fits(find_linears(model, config.skip), config.group_size)

    def make_layer(name: str, linear: nn.Linear) -> QuantLinear:
        try:
            return QuantLinear.from_linear(linear, config.n_bits, config.group_size, config.symmetric)
        except ValueError as err:
            raise ValueError(f"Layer {name!r}: {err}") from err

    replace_linears(model, make_layer, config.skip, progress=progress, desc=f"RTN {config.n_bits}-bit")
    return model
