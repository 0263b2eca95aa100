"""Layer sensitivity, and a greedy bit allocation under a memory budget.

Not every layer suffers equally from quantization. A *sensitivity scan* quantizes one unit
at a time (one layer type across all blocks, or one whole block), leaves the rest in
float, and records how much the metric (perplexity) moves:

    damage(u, b) = metric(model with only unit u at b bits) - metric(float model)

Given each unit's bytes at each bit width and its damage, a *bit allocation* picks one
width per unit to minimise the total damage (assumed additive) with total bytes <= budget.
:func:`allocate_bits` solves it greedily, like a fractional knapsack: start every unit at
its cheapest width, then repeatedly take the upgrade with the largest damage saved per
extra byte that still fits. It is a heuristic: an early cheap upgrade can strand the budget
a better one needed. :func:`allocate_bits_optimal` finds the exact optimum by dynamic
programming over the Pareto frontier, and :func:`allocate_bits_exhaustive` tries every
combination (small problems only) to check both.

The scan swaps weights in place (``W <- W_hat``) and always puts the originals back. The
unit list skips ``lm_head`` by default: SmolLM2 ties it to the embedding, so quantizing it
in place would quantize the input embedding too (one tensor, two uses).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .quant_linear import QuantLinear
from .quantize import fake_quantize
from .swap import find_linears, replace_linears
from .wiring import wiring_for

FLOAT_BITS = 16  # a unit "kept in float": counted at 16 bits per weight, as it would be stored in FP16
UNIT_KINDS = ("type", "block", "layer")


# ---------------------------------------------------------------- units and quantizers

def linear_units(model: nn.Module, by: str = "type", skip: tuple[str, ...] = ("lm_head",)) -> dict[str, list[str]]:
    """Group the linear layers into units: ``{label: [qualified names]}``.

    by="type": one unit per layer type across blocks (``"q_proj"``, ...); "block": one unit per
    decoder block (``"block 3"``, from the architecture's wiring); "layer": every linear alone.
    """
    if by not in UNIT_KINDS:
        raise ValueError(f"by must be one of {UNIT_KINDS}, got {by!r}.")
    names = [name for name, _ in find_linears(model, skip)]
    units: dict[str, list[str]] = {}
    for name in names:
        if by == "type":
            label = name.rsplit(".", 1)[-1]
        elif by == "block":
            prefix = wiring_for(model).blocks + "."
            label = f"block {name[len(prefix):].split('.')[0]}" if name.startswith(prefix) else name
        else:
            label = name
        units.setdefault(label, []).append(name)
    return units


def tied_linears(model: nn.Module) -> dict[str, list[str]]:
    """``{linear name: [other parameters sharing its weight]}`` for linears whose weight is tied,
    e.g. ``{"lm_head": ["model.embed_tokens.weight"]}`` for SmolLM2: quantizing that weight
    quantizes the embedding too, and the memory is counted once."""
    owners: dict[tuple, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault((param.device, param.data_ptr()), []).append(name)
    tied = {}
    for name, linear in find_linears(model):
        others = [p for p in owners[(linear.weight.device, linear.weight.data_ptr())] if p != f"{name}.weight"]
        if others:
            tied[name] = others
    return tied


def rtn_quantizer(n_bits: int = 4, group_size: int | str = 64, symmetric: bool = False) -> Callable:
    """``W -> W_hat``: round-to-nearest fake quantization (the quantizer a scan applies)."""
    return lambda W: fake_quantize(W, n_bits, group_size, symmetric)


@contextmanager
def quantized_weights(model: nn.Module, names: list[str], quantizer: Callable[[torch.Tensor], torch.Tensor]):
    """Within the block, the weight of each named linear is ``quantizer(W)``; the originals come back on exit
    (also on error)."""
    saved: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name in names:
                W = model.get_submodule(name).weight
                W_hat = quantizer(W.detach().clone())
                if not isinstance(W_hat, torch.Tensor) or W_hat.shape != W.shape:
                    raise ValueError(f"quantizer must return W_hat shaped like {name}'s weight {tuple(W.shape)}, "
                                     f"got {getattr(W_hat, 'shape', type(W_hat))}.")
                saved[name] = W.detach().clone()
                W.copy_(W_hat.to(W.dtype))
        yield model
    finally:
        with torch.no_grad():
            for name, W in saved.items():
                model.get_submodule(name).weight.copy_(W)


# ---------------------------------------------------------------- the scan

@dataclass(frozen=True)
class Sensitivity:
    """A scan's result: the float model's metric and the metric with each unit quantized alone."""

    baseline: float
    metric: dict[str, float]

    @property
    def delta(self) -> dict[str, float]:
        """``metric - baseline`` per unit (the damage)."""
        return {unit: value - self.baseline for unit, value in self.metric.items()}

    def ranked(self) -> list[tuple[str, float]]:
        """Units from most to least sensitive, with their damage."""
        return sorted(self.delta.items(), key=lambda item: -item[1])


def sensitivity_scan(model: nn.Module, units: dict[str, list[str]], quantizer: Callable,
                     evaluate: Callable[[nn.Module], float], progress: bool = True) -> Sensitivity:
    """Quantize each unit alone with ``quantizer`` (``W -> W_hat``) and record ``evaluate(model)``.

    evaluate: any function of the model returning a number where lower is better, e.g.
    ``lambda m: perplexity(m, tokenizer, progress=False)``. The model is unchanged afterwards.
    """
    if not units:
        raise ValueError("units is empty; build them with linear_units(model, by='type').")
    baseline = float(evaluate(model))
    metric = {}
    for unit, names in tqdm(units.items(), desc="sensitivity scan", disable=not progress):
        with quantized_weights(model, names, quantizer):
            metric[unit] = float(evaluate(model))
    return Sensitivity(baseline, metric)


def sensitivity_of_unit_reference(model: nn.Module, names: list[str], quantizer: Callable,
                                  evaluate: Callable[[nn.Module], float]) -> float:
    """Slow reference for one scan entry: quantize a deep copy (the model is never touched)."""
    import copy

    clone = copy.deepcopy(model)
    with torch.no_grad():
        for name in names:
            W = clone.get_submodule(name).weight
            W.copy_(quantizer(W.detach().clone()).to(W.dtype))
    return float(evaluate(clone))


def damage_table(model: nn.Module, units: dict[str, list[str]], bit_options: tuple[int, ...],
                 evaluate: Callable[[nn.Module], float], group_size: int | str = 64, symmetric: bool = False,
                 progress: bool = True) -> dict[str, dict[int, float]]:
    """``{unit: {n_bits: damage}}`` from one RTN scan per width (``FLOAT_BITS``: damage 0, no scan)."""
    table: dict[str, dict[int, float]] = {unit: {} for unit in units}
    for n_bits in bit_options:
        if n_bits == FLOAT_BITS:
            for unit in units:
                table[unit][n_bits] = 0.0
            continue
        scan = sensitivity_scan(model, units, rtn_quantizer(n_bits, group_size, symmetric), evaluate, progress)
        for unit, damage in scan.delta.items():
            table[unit][n_bits] = damage
    return table


# ---------------------------------------------------------------- sizes and allocation

def unit_nbytes(model: nn.Module, names: list[str], n_bits: int, group_size: int | str = 64,
                symmetric: bool = False) -> int:
    """Bytes the named linears take as RTN ``QuantLinear`` layers (``FLOAT_BITS``: FP16 weights and bias)."""
    total = 0
    for name in names:
        linear = model.get_submodule(name)
        if n_bits == FLOAT_BITS:
            total += 2 * linear.weight.numel() + (0 if linear.bias is None else 2 * linear.bias.numel())
            continue
        empty = QuantLinear(linear.in_features, linear.out_features, n_bits, group_size, symmetric,
                            bias=linear.bias is not None, device="meta")  # shapes only, no memory
        total += empty.theoretical_nbytes()
    return total


def allocate_bits(costs: dict[str, dict[int, float]], damage: dict[str, dict[int, float]],
                  budget: float) -> dict[str, int]:
    """Greedy bit widths per unit: least total damage with total cost <= ``budget`` (bytes).

    costs[u][b]: bytes of unit u at b bits; damage[u][b]: its damage (lower is better).
    Start at each unit's cheapest width; repeatedly apply the upgrade (to any costlier width)
    with the largest damage saved per extra byte that fits the remaining budget.
    """
    if set(costs) != set(damage) or any(set(costs[u]) != set(damage[u]) for u in costs):
        raise ValueError("costs and damage must list the same units and the same bit widths for each unit.")
    choice = {u: min(costs[u], key=lambda b: (costs[u][b], damage[u][b])) for u in costs}
    spent = sum(costs[u][b] for u, b in choice.items())
    if spent > budget:
        raise ValueError(f"The budget of {budget:,.0f} bytes is below the smallest possible size, "
                         f"{spent:,.0f} bytes (every unit at its cheapest width); raise it or add a cheaper width.")
    while True:
        best, best_ratio = None, 0.0
        for u, b in choice.items():
            for b_new, cost in costs[u].items():
                extra, saved = cost - costs[u][b], damage[u][b] - damage[u][b_new]
                if extra <= 0 or saved <= 0 or spent + extra > budget:
                    continue
                if saved / extra > best_ratio:
                    best, best_ratio = (u, b_new, extra), saved / extra
        if best is None:
            return choice
        u, b_new, extra = best
        choice[u], spent = b_new, spent + extra


def allocate_bits_optimal(costs: dict[str, dict[int, float]], damage: dict[str, dict[int, float]],
                          budget: float) -> dict[str, int]:
    """The least total damage within ``budget``, exactly: dynamic programming over units, keeping
    only the Pareto frontier of partial allocations (no other is both cheaper and less damaging).

    The greedy answer can strand budget (a cheap upgrade taken early leaves too little for a
    better one); this one cannot. Cost: frontier size x widths per unit, usually small.
    """
    if set(costs) != set(damage) or any(set(costs[u]) != set(damage[u]) for u in costs):
        raise ValueError("costs and damage must list the same units and the same bit widths for each unit.")
    frontier: list[tuple[float, float, tuple[int, ...]]] = [(0, 0.0, ())]  # (bytes, damage, widths so far)
    for u in costs:
        extended = sorted((spent + costs[u][b], hurt + damage[u][b], widths + (b,))
                          for spent, hurt, widths in frontier for b in costs[u] if spent + costs[u][b] <= budget)
        frontier, least = [], float("inf")
        for point in extended:  # by cost, then damage: keep a point only if it lowers the damage
            if point[1] < least:
                frontier.append(point)
                least = point[1]
        if not frontier:
            raise ValueError(f"No allocation fits the budget of {budget:,.0f} bytes; raise it or add a cheaper width.")
    best = min(frontier, key=lambda point: point[1])
    return dict(zip(costs, best[2]))


def allocate_bits_exhaustive(costs: dict[str, dict[int, float]], damage: dict[str, dict[int, float]],
                             budget: float) -> dict[str, int]:
    """Slow reference: the best allocation over every combination (widths ** units; small problems only)."""
    units = list(costs)
    best, best_damage = None, float("inf")
    for combo in itertools.product(*(sorted(costs[u]) for u in units)):
        if sum(costs[u][b] for u, b in zip(units, combo)) > budget:
            continue
        total = sum(damage[u][b] for u, b in zip(units, combo))
        if total < best_damage:
            best, best_damage = dict(zip(units, combo)), total
    if best is None:
        raise ValueError(f"No allocation fits the budget of {budget:,.0f} bytes.")
    return best


def apply_allocation(model: nn.Module, units: dict[str, list[str]], allocation: dict[str, int],
                     group_size: int | str = 64, symmetric: bool = False, progress: bool = True) -> nn.Module:
    """Swap each unit's linears for RTN ``QuantLinear`` layers at its allocated width, in place
    (units at ``FLOAT_BITS`` stay as they are); return ``model``."""
    missing = set(units) - set(allocation)
    if missing:
        raise ValueError(f"No width allocated for unit(s) {sorted(missing)[:3]}; allocate every unit.")
    bits_of = {name: allocation[u] for u, names in units.items() for name in names}

    def make_layer(name: str, linear: nn.Linear):
        n_bits = bits_of.get(name, FLOAT_BITS)
        return None if n_bits == FLOAT_BITS else QuantLinear.from_linear(linear, n_bits, group_size, symmetric)

    replace_linears(model, make_layer, progress=progress, desc="mixed-precision RTN")
    return model
