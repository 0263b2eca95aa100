"""Running statistics of a layer's input X, accumulated one batch of tokens at a time.

Three accumulators, for three consumers; each has a slow reference that sees all of X at once:

* :class:`HessianAccumulator` -- GPTQ's Hessian of the layer-wise objective,
  ``H = 2/n Σ_t x_t x_tᵀ`` [in, in] (reference: ``hessian.hessian_reference``), summed in float32;
* :class:`InputStats` -- AWQ's statistics, summed in float64: the second moment
  ``C = XᵀX / n`` [in, in] (the output error of a weight change ΔW is ``tr(ΔW C ΔWᵀ)``) and
  ``mean_t |x|`` [in]; it also gives ``H = 2C``, the same H as GPTQ's;
* :class:`RunningStats` -> :class:`Stats` -- per-channel absmax, mean |x| and outlier counts for
  SmoothQuant, static activation scales and LLM.int8 (reference: :func:`stats_of`).

X arrives as [..., in] (any leading batch and sequence dims) and is flattened to rows of tokens,
``X.reshape(-1, in)`` [n_tokens, in]. Sums are kept in float64 where they grow with the token
count. Nothing here runs a model: ``hooks`` feeds them, ``probes`` and the drivers use them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

OUTLIER_THRESHOLD = 6.0  # LLM.int8 (Dettmers et al., 2022): a feature is an outlier when |x| >= 6


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


class InputStats:
    """Running second moment ``C = XᵀX / n`` [in, in] (and GPTQ's ``H = 2C``) and ``mean_abs = mean_t |X|`` [in]
    of one linear input."""

    def __init__(self, in_features: int, device=None):
        self.XtX = torch.zeros(in_features, in_features, dtype=torch.float64, device=device)
        self.sum_abs = torch.zeros(in_features, dtype=torch.float64, device=device)
        self.n_tokens = 0

    def add(self, x: torch.Tensor) -> None:
        X = x.reshape(-1, x.shape[-1]).float()  # [batch, seq, in] -> [n_tokens, in]
        self.XtX += (X.T @ X).double()
        self.sum_abs += X.abs().sum(dim=0, dtype=torch.float64)
        self.n_tokens += X.shape[0]

    @property
    def C(self) -> torch.Tensor:
        """``XᵀX / n`` [in, in] float32."""
        if self.n_tokens == 0:
            raise ValueError("No input was recorded; the layer never ran on the calibration data.")
        return (self.XtX / self.n_tokens).float()

    @property
    def H(self) -> torch.Tensor:
        """``2 XᵀX / n`` [in, in] float32: GPTQ's Hessian (``HessianAccumulator.H``), from float64 sums."""
        if self.n_tokens == 0:
            raise ValueError("No input was recorded; the layer never ran on the calibration data.")
        return (2.0 * self.XtX / self.n_tokens).float()

    @property
    def mean_abs(self) -> torch.Tensor:
        return (self.sum_abs / max(self.n_tokens, 1)).float()


@dataclass(frozen=True)
class Stats:
    """Statistics of one module's input X [n_tokens, in] over all calibration tokens.

    absmax:        [in] float32, max_t |X[t, j]|
    mean_abs:      [in] float32, mean_t |X[t, j]|
    outlier_count: [in] int64, tokens with |X[t, j]| >= threshold
    min, max:      per-tensor extremes of X
    n_tokens:      rows seen;  threshold: the outlier threshold used
    """

    absmax: torch.Tensor
    mean_abs: torch.Tensor
    outlier_count: torch.Tensor
    min: float
    max: float
    n_tokens: int
    threshold: float

    @property
    def tensor_absmax(self) -> float:
        """max |X| over the whole tensor: what a per-tensor absmax scale is built from."""
        return max(abs(self.min), abs(self.max))

    @property
    def outlier_fraction(self) -> torch.Tensor:
        """[in]: fraction of tokens in which channel j reaches the threshold."""
        return self.outlier_count.double() / max(self.n_tokens, 1)


class RunningStats:
    """Accumulates :class:`Stats` one batch of rows at a time (sums in float64)."""

    def __init__(self, threshold: float = OUTLIER_THRESHOLD):
        self.threshold = threshold
        self.absmax = self.sum_abs = self.outlier_count = None
        self.min, self.max, self.n_tokens = float("inf"), float("-inf"), 0

    def update(self, X: torch.Tensor) -> None:
        """Fold in X [n_tokens, in]."""
        A = X.detach().abs().float()  # [n_tokens, in]
        absmax, sum_abs = A.amax(dim=0).cpu(), A.sum(dim=0, dtype=torch.float64).cpu()  # [in], [in]
        count = (A >= self.threshold).sum(dim=0).cpu()  # [in]
        if self.absmax is None:
            self.absmax, self.sum_abs, self.outlier_count = absmax, sum_abs, count
        else:
            if absmax.shape != self.absmax.shape:
                raise ValueError(f"Input width changed from {self.absmax.numel()} to {absmax.numel()} channels.")
            self.absmax = torch.maximum(self.absmax, absmax)
            self.sum_abs += sum_abs
            self.outlier_count += count
        self.min = min(self.min, float(X.min()))
        self.max = max(self.max, float(X.max()))
        self.n_tokens += X.shape[0]

    def result(self) -> Stats:
        if self.absmax is None:
            raise ValueError("No input was recorded; the module never ran on the calibration batches.")
        mean_abs = (self.sum_abs / self.n_tokens).float()
        return Stats(self.absmax.clone(), mean_abs, self.outlier_count.clone(), self.min, self.max,
                     self.n_tokens, self.threshold)


def stats_of(X: torch.Tensor, threshold: float = OUTLIER_THRESHOLD) -> Stats:
    """Slow reference for the running statistics: :class:`Stats` of one whole X [n_tokens, in]."""
    X = X.detach().float()
    return Stats(X.abs().amax(dim=0), X.abs().double().mean(dim=0).float(), (X.abs() >= threshold).sum(dim=0),
                 float(X.min()), float(X.max()), X.shape[0], threshold)
