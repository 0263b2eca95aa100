"""Folding a per-channel scale into the ops around it, so the float model is unchanged.

AWQ and SmoothQuant both rewrite ``Y = X Wᵀ`` as ``(X diag(s)⁻¹)(W diag(s))ᵀ``. The division
costs nothing at run time: X is the output of a producer (a norm, or a linear whose output
rows make X's channels), so ``diag(s)⁻¹`` is folded into the producer's weights and the
consumers' weight columns are multiplied by s:

    norm producer     weight_j /= s_j   (and bias_j /= s_j for a LayerNorm)
    linear producer   W_prev[j, :] /= s_j,  b_prev[j] /= s_j
    each consumer     W[:, j] *= s_j

Which producer feeds which consumers is the architecture's wiring (``wiring.scale_groups``).
Each product is computed in float64 and rounded once to the tensor's dtype: for float32
weights and a float32 s that is the float32 product itself (float64 carries more than twice
float32's precision, so rounding twice changes nothing), and it stays exact for float16 or
bfloat16 weights, where an in-place product with a float32 s would round differently.
"""
from __future__ import annotations

import torch
from torch import nn

from .wiring import ScaleGroup


def _mul_(tensor: torch.Tensor, factor: torch.Tensor) -> None:
    """``tensor *= factor`` computed in float64 and rounded once to the tensor's dtype."""
    tensor.copy_((tensor.double() * factor).to(tensor.dtype))


def _div_(tensor: torch.Tensor, divisor: torch.Tensor) -> None:
    """``tensor /= divisor`` computed in float64 and rounded once to the tensor's dtype."""
    tensor.copy_((tensor.double() / divisor).to(tensor.dtype))


@torch.no_grad()
def fold_scales(producer: nn.Module, consumers: list[nn.Linear], s: torch.Tensor) -> None:
    """Fold ``diag(s)⁻¹`` into ``producer`` and ``diag(s)`` into every consumer, in place.

    producer: an ``nn.Linear`` (its output rows are the channels) or a norm with a weight [in];
    consumers: the linears reading that output; s [in], positive.
    """
    s = s.detach().double().to(consumers[0].weight.device)  # [in]
    if isinstance(producer, nn.Linear):
        _div_(producer.weight, s[:, None])  # [in, prev_in]: row j makes channel j
    elif getattr(producer, "weight", None) is not None and producer.weight.dim() == 1:
        _div_(producer.weight, s)  # [in]
    else:
        raise ValueError(f"Cannot fold into a {type(producer).__name__}: the producer must be an nn.Linear or a "
                         "norm with a weight vector (RMSNorm, LayerNorm).")
    if getattr(producer, "bias", None) is not None:
        _div_(producer.bias, s)
    for linear in consumers:
        _mul_(linear.weight, s[None, :])  # [out, in]: column j reads channel j


def fold_group(block: nn.Module, group: ScaleGroup, s: torch.Tensor) -> None:
    """:func:`fold_scales` for one scale group of a decoder ``block`` (names from the wiring)."""
    fold_scales(block.get_submodule(group.prev), [block.get_submodule(name) for name in group.linears], s)
