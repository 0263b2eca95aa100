"""How far a dequantized weight ``W_hat`` is from the original ``W``.

Three views of one error ``E = W - W_hat``, all accumulated in float64:

    mse            = mean(E**2)
    sqnr_db        = 10 * log10( ||W||^2 / ||E||^2 )      (signal-to-quantization-noise, dB)
    relative_error = ||E||_F / ||W||_F

Each extra bit halves the step, so the noise power drops 4x: about +6.02 dB of SQNR per
bit for a well-spread tensor. One outlier stretches a per-tensor grid and costs many dB.
"""
from __future__ import annotations

import math

import torch


def _error(W: torch.Tensor, W_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if W.shape != W_hat.shape:
        raise ValueError(f"W and W_hat must have the same shape, got {tuple(W.shape)} and {tuple(W_hat.shape)}.")
    W = W.detach().to(torch.float64)
    return W, W - W_hat.detach().to(torch.float64)


def mse(W: torch.Tensor, W_hat: torch.Tensor) -> float:
    """Mean squared error ``mean((W - W_hat)**2)``."""
    _, E = _error(W, W_hat)
    return float((E**2).mean())


def sqnr_db(W: torch.Tensor, W_hat: torch.Tensor) -> float:
    """``10 log10(||W||^2 / ||W - W_hat||^2)`` in dB; +inf when W_hat == W exactly."""
    W, E = _error(W, W_hat)
    signal, noise = float((W**2).sum()), float((E**2).sum())
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def relative_error(W: torch.Tensor, W_hat: torch.Tensor) -> float:
    """Relative Frobenius error ``||W - W_hat||_F / ||W||_F`` (0 when exact, inf when W is 0 and W_hat is not)."""
    W, E = _error(W, W_hat)
    error, norm = float(torch.linalg.vector_norm(E)), float(torch.linalg.vector_norm(W))
    if error == 0:
        return 0.0
    return error / norm if norm > 0 else math.inf


def error_report(W: torch.Tensor, W_hat: torch.Tensor) -> dict[str, float]:
    """All three metrics in one dict, for a table row."""
    return {"mse": mse(W, W_hat), "sqnr_db": sqnr_db(W, W_hat), "relative_error": relative_error(W, W_hat)}
