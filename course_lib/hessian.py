"""The layer-wise Hessian of GPTQ, its damped inverse, and the output error it measures.

For a linear layer y = W x, the quantization objective on calibration inputs X [n, in]
(n tokens) is the squared output error, averaged over tokens,

    E(W_hat) = 1/n Σ_t ||(W − W_hat) x_t||² = ½ tr((W − W_hat) H (W − W_hat)ᵀ),   H = 2/n Σ_t x_t x_tᵀ

so H [in, in] is all GPTQ needs to know about the data. :class:`HessianAccumulator`
builds it as a running sum over chunks of activations; :func:`inverse_hessian_factor`
damps it (λ = damp_percent · mean(diag H)) and returns the upper Cholesky factor U of
H⁻¹ (H⁻¹ = Uᵀ U), whose rows drive GPTQ's column updates.
"""
from __future__ import annotations

import warnings

import torch



def hessian_reference(X: torch.Tensor) -> torch.Tensor:
    """Slow reference: ``2/n XᵀX`` in float64 from all tokens of ``X`` [..., in] at once."""
    X = X.reshape(-1, X.shape[-1]).double()  # [tokens, in]
    return 2.0 * X.T @ X / X.shape[0]


def output_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor) -> float:
    """Mean over calibration tokens of ``||(W − W_hat) x||²``, computed from H: ``½ tr(ΔW H ΔWᵀ)``."""
    dW = (W.double() - W_hat.double())  # [out, in]
    return 0.5 * float(((dW @ H.double()) * dW).sum())


def inverse_hessian_factor(
    H: torch.Tensor, damp_percent: float = 0.01, retry: bool = True, name: str = "layer"
) -> tuple[torch.Tensor, float]:
    """``(U, damp)``: U upper triangular with ``(H + λI)⁻¹ = Uᵀ U``, λ = damp · mean(diag H).

    A Hessian that is not positive definite (fewer calibration tokens than inputs,
    duplicated input features) makes the Cholesky factorisation fail. With ``retry``
    the damping grows tenfold, up to three times, with a warning naming the layer and
    the damping that worked; otherwise, or if that is not enough, a ValueError says what
    to change.
    """
    if damp_percent < 0:
        raise ValueError(f"damp_percent must be >= 0, got {damp_percent}.")
    n = H.shape[0]
    eye = torch.eye(n, device=H.device, dtype=H.dtype)
    mean_diag = H.diagonal().mean()
    tries = [damp_percent]
    if retry:
        tries += [max(damp_percent, 1e-3) * 10**k for k in (1, 2, 3)]
    for damp in tries:
        L, info = torch.linalg.cholesky_ex(H + damp * mean_diag * eye)
        if info.item() == 0:
            H_inv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(H_inv, upper=True)
            if info.item() == 0 and torch.isfinite(U).all():
                if damp != damp_percent:
                    warnings.warn(
                        f"{name}: H is not positive definite with damp_percent={damp_percent}; "
                        f"used damp_percent={damp:g} instead. More calibration tokens make H better conditioned.",
                        stacklevel=2,
                    )
                return U, damp
    raise ValueError(
        f"{name}: H ({n}×{n}) is singular or not positive definite even with damp_percent={tries[-1]:g}. "
        "Raise damp_percent (0.01 is usual, 0.1 is safe), allow retries (retry=True), or calibrate on more "
        f"tokens: H built from n tokens has rank at most n, and this layer has {n} inputs."
    )
