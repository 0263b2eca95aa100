"""Plots the notebooks share: weights against their grid, error against bits, Pareto fronts.

Each function draws on a given matplotlib ``ax`` (or a new figure) and returns the ``ax``,
so a notebook can restyle or combine them. matplotlib is imported lazily.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _axes(ax, figsize=(7, 4)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)[1]


def histogram_with_grid(values: torch.Tensor, grid: torch.Tensor, ax=None, bins: int = 200, title: str = ""):
    """Histogram of ``values`` with a vertical line at every representable level in ``grid``.

    values: any shape (flattened); grid: 1-D tensor of the dequantized levels.
    """
    ax = _axes(ax)
    v = values.detach().float().flatten().cpu()
    ax.hist(v.numpy(), bins=bins, color="tab:blue", alpha=0.8, log=True)
    for level in grid.detach().float().cpu().tolist():
        ax.axvline(level, color="tab:red", lw=0.6, alpha=0.7)
    ax.set(xlabel="value", ylabel="count (log)", title=title or f"{v.numel():,} values, {len(grid)} grid levels")
    return ax


def error_vs_bits(bits: Sequence[int], errors: dict[str, Sequence[float]], ax=None, ylabel: str = "SQNR (dB)"):
    """One line per scheme: an error metric against bit width."""
    ax = _axes(ax)
    for label, ys in errors.items():
        ax.plot(list(bits), list(ys), marker="o", label=label)
    ax.set(xlabel="bits", ylabel=ylabel, xticks=list(bits))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def pareto(sizes_mb: Sequence[float], perplexities: Sequence[float], labels: Sequence[str], ax=None,
           baseline: float | None = None, title: str = "Memory against perplexity"):
    """Scatter of (memory, perplexity) points with labels; the lower-left frontier is joined.

    A point is on the frontier when no other point is both smaller and lower.
    """
    ax = _axes(ax)
    points = sorted(zip(sizes_mb, perplexities, labels))
    for size, ppl, label in points:
        ax.scatter(size, ppl, color="tab:blue")
        ax.annotate(label, (size, ppl), textcoords="offset points", xytext=(4, 4), fontsize=8)
    frontier, best = [], float("inf")
    for size, ppl, _ in points:
        if ppl < best:
            frontier.append((size, ppl))
            best = ppl
    ax.plot(*zip(*frontier), color="tab:orange", lw=1, label="Pareto frontier")
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", lw=1, label=f"reference (FP32) {baseline:.2f}")
    ax.set(xlabel="model size (MB)", ylabel="perplexity (lower is better)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
