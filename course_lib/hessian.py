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

from .blockwise import record_inputs
from .swap import find_linears


class HessianAccumulator:
    """Running ``H = 2/n Σ x xᵀ`` over every token x [in] passed to :meth:`add`."""

    def __init__(self, in_features: int, device=None, dtype: torch.dtype = torch.float32):
        self.in_features = in_features
        self.XtX = torch.zeros(in_features, in_features, device=device, dtype=dtype)  # Σ x xᵀ
        self.n_tokens = 0

    def add(self, X: torch.Tensor) -> None:
        """Add the tokens of ``X`` [..., in] (any leading batch and sequence dims)."""
        if X.shape[-1] != self.in_features:
            raise ValueError(f"Activations have {X.shape[-1]} features, the Hessian expects {self.in_features}.")
        X = X.reshape(-1, self.in_features).to(self.XtX.dtype)  # [tokens, in]
        self.XtX.addmm_(X.T, X)
        self.n_tokens += X.shape[0]

    @property
    def H(self) -> torch.Tensor:
        """``2/n Σ x xᵀ`` [in, in]; a ValueError before any token was added."""
        if self.n_tokens == 0:
            raise ValueError("No activations reached this layer: the calibration set is empty or the hook never ran.")
        return 2.0 * self.XtX / self.n_tokens


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


@torch.no_grad()
def hessians_by_position(model, input_ids: torch.Tensor, skip=("lm_head",), batch_size: int = 4
                         ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{linear name: (H of position 0, H of positions 1..)}`` of ``model``'s own inputs on ``input_ids``.

    input_ids [windows, seq_len]. The first token of a window is where attention "sinks" form: it
    is 1 token in seq_len of a calibration set, yet every later token reads it. Splitting H shows
    how a method's output error falls on it and on the rest.
    """
    if input_ids.dim() != 2 or input_ids.shape[1] < 2:
        raise ValueError(f"input_ids must be [windows, seq_len >= 2] token ids, got shape {tuple(input_ids.shape)}.")
    layers = dict(find_linears(model, tuple(skip)))
    first = {name: HessianAccumulator(layer.in_features) for name, layer in layers.items()}
    rest = {name: HessianAccumulator(layer.in_features) for name, layer in layers.items()}

    def add(name, x):  # x [batch, seq, in]
        first[name].add(x[:, :1])
        rest[name].add(x[:, 1:])

    with record_inputs(layers, add):
        for start in range(0, input_ids.shape[0], batch_size):
            model(input_ids=input_ids[start:start + batch_size], use_cache=False)
    return {name: (first[name].H, rest[name].H) for name in layers}
