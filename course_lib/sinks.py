"""Attention sinks: cheap measurements of why the first position of a window is special (notebook 05).

* :func:`attention_on_first` -- per layer and head, the mean attention weight that the queries 1..
  of a window put on key position 0 (a head with most of its weight there is a *sink* head);
* :func:`record_layer_inputs` -- the inputs ``[windows, seq, in]`` of chosen linears on some windows;
* :func:`cosine_to_first` -- how position 0's input points compared with the other positions';
* :func:`first_position_share` -- position 0's share of each input channel's ``diag(H)``;
* :func:`quantization_order` -- the column order of a GPTQ run, plain or act-order;
* :func:`energy_in_last_columns` -- the share of an input's squared norm that falls on the columns a
  GPTQ order quantizes last (the columns that have absorbed the most updates when they are rounded);
* :func:`errors_by_position` -- a quantized weight's output error at position 0 and at the others.

None of them quantizes anything; they read a model run on token ids, or tensors already computed.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from .hessian import output_error
from .hooks import record_inputs, run_batches


def _check_windows(input_ids: torch.Tensor, min_len: int = 2) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < min_len:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be token ids [windows, seq_len >= {min_len}], got {shape}.")


@contextmanager
def eager_attention(model):
    """Within the block, ``model`` computes attention explicitly, so it can return the attention weights
    (PyTorch's fused SDPA kernel cannot); the previous implementation is restored on exit."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


@torch.no_grad()
def attention_on_first(model, input_ids: torch.Tensor, batch_size: int = 1) -> torch.Tensor:
    """``[layers, heads]``: the attention weight that queries ``1..seq_len-1`` put on key position 0,
    averaged over those queries and over the windows of ``input_ids`` ``[windows, seq_len]``.

    Query 0 is left out: causal attention gives it nothing to attend to but itself. A head with a
    value above 0.5 puts most of its attention on the first token of the window.
    """
    _check_windows(input_ids)
    device = next(model.parameters()).device
    total = None
    with eager_attention(model):
        for ids in input_ids.split(batch_size):
            attentions = model(input_ids=ids.to(device), output_attentions=True, use_cache=False).attentions
            # each [batch, heads, query, key]: the weight of queries 1.. on key 0, summed over batch and queries
            mass = torch.stack([a[:, :, 1:, 0].float().sum(dim=(0, 2)) for a in attentions]).cpu()  # [layers, heads]
            total = mass if total is None else total + mass
    return total / (input_ids.shape[0] * (input_ids.shape[1] - 1))


@torch.no_grad()
def record_layer_inputs(model, names: list[str], input_ids: torch.Tensor, batch_size: int = 4
                        ) -> dict[str, torch.Tensor]:
    """``{name: X [windows, seq_len, in]}``: the inputs of the linears ``names`` on ``input_ids``, float32 on the CPU."""
    _check_windows(input_ids)
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = {name: model.get_submodule(name) for name in names}
    with record_inputs(modules, lambda name, x: seen[name].append(x.float().cpu())):
        run_batches(model, input_ids, batch_size, progress=False)
    return {name: torch.cat(chunks) for name, chunks in seen.items()}


def cosine_to_first(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How position 0's input points, against the other positions of the same window.

    X [windows, seq_len >= 3, in]. Returns ``(to_first [windows, seq_len-1], between [windows])``:
    the cosine of each position 1.. with position 0, and the mean cosine between two different
    positions among 1.. (the yardstick: how alike two ordinary positions are).
    """
    if X.dim() != 3 or X.shape[1] < 3:
        raise ValueError(f"X must be [windows, seq_len >= 3, in], got shape {tuple(X.shape)}.")
    unit = X.double() / X.double().norm(dim=-1, keepdim=True).clamp_min(1e-30)  # [windows, seq, in]
    to_first = (unit[:, 1:] * unit[:, :1]).sum(-1)  # [windows, seq-1]
    rest = unit[:, 1:]  # [windows, k, in], k = seq - 1
    k = rest.shape[1]
    total = rest.sum(1)  # [windows, in]
    # Σ_{t≠u} cos(t, u) = |Σ_t unit_t|² − k (the k terms t = u are 1 each)
    between = ((total * total).sum(-1) - k) / (k * (k - 1))  # [windows]
    return to_first.float(), between.float()


def first_position_share(X: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Position 0's share of ``diag(H)``: of ``Σ x_j²`` over all positions and windows, the part at position 0.

    X [windows, seq_len, in]. Returns ``[in]``, one share per channel, or with ``per_channel=False`` a
    0-dim tensor, the share of the whole trace ``tr(H)``. An ordinary position would hold ``1/seq_len``.
    """
    if X.dim() != 3:
        raise ValueError(f"X must be [windows, seq_len, in], got shape {tuple(X.shape)}.")
    squares = X.double() ** 2  # [windows, seq, in]
    first, total = squares[:, 0].sum(0), squares.sum((0, 1))  # [in] each
    if not per_channel:
        first, total = first.sum(), total.sum()
    return (first / total.clamp_min(1e-300)).float()


def quantization_order(H: torch.Tensor, act_order: bool) -> torch.Tensor:
    """``[in]``: the columns in the order GPTQ quantizes them: ``0, 1, ..`` or, with act-order, by decreasing
    ``diag(H)`` (ties in column order, as ``gptq.gptq_quantize`` sorts them)."""
    n_in = H.shape[0]
    if not act_order:
        return torch.arange(n_in, device=H.device)
    return torch.argsort(H.diagonal(), descending=True, stable=True)


def energy_in_last_columns(x: torch.Tensor, order: torch.Tensor, fraction: float = 0.25) -> float:
    """The share of ``Σ_j x_j²`` that falls on the last ``fraction`` of the columns in ``order``.

    x [in] or [..., in] (squares summed over the leading dims); order [in], the column order a GPTQ run
    quantizes in (:func:`quantization_order`).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    energy = (x.double() ** 2).reshape(-1, x.shape[-1]).sum(0)  # [in]
    n_last = max(1, round(fraction * energy.numel()))
    return float(energy[order[-n_last:]].sum() / energy.sum().clamp_min(1e-300))


def errors_by_position(W: torch.Tensor, candidates: dict[str, torch.Tensor], H_first: torch.Tensor,
                       H_rest: torch.Tensor) -> dict[str, tuple[float, float]]:
    """``{name: (error at position 0, error at positions 1..)}``: each ``W_hat`` of ``candidates`` against
    ``W`` [out, in], as mean output error per token ``½ tr(ΔW H ΔWᵀ)`` under H of position 0 and of the rest
    (``probes.hessians_by_position``)."""
    return {name: (output_error(W, W_hat, H_first), output_error(W, W_hat, H_rest))
            for name, W_hat in candidates.items()}
