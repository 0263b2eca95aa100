"""LLM.int8() (Dettmers et al., 2022): mixed-precision decomposition of a matmul.

Vector-wise int8 (one absmax scale per row of X, one per output row of W) works well until
a few input channels (*outlier features*) carry values far outside the rest: each token's
scale is then set by its outlier, and every other value of that token rounds to a few
codes. LLM.int8 splits the input columns in two:

    O = { j : |X[t, j]| >= threshold for some token t }            (threshold 6 in the paper)

    Y = X[:, O] W[:, O]ᵀ                                            16-/32-bit, exact
      + scale_X ⊙ (q_X[:, ~O] @ q_W[:, ~O]ᵀ) ⊙ scale_Wᵀ              int8, vector-wise, int32 sums

    scale_X [n_tokens, 1] = max_j∉O |X[t, j]| / 127,   scale_W [out, 1] = max_j |W[o, j]| / 127

The outlier set is found per call, from the activations of that call; it is usually a tiny
fraction of the columns, so nearly all the work stays int8.

Two forms here:

* :func:`decomposed_matmul` (X, W) is the paper's equation with float W: every column an
  outlier gives X Wᵀ exactly; none gives :func:`act_quant.vectorwise_int8_matmul`.
* :class:`LLMInt8Linear` stores only int8 W (per-row scales over the full row), as
  bitsandbytes does at inference, so its outlier columns multiply the *dequantized*
  weight columns: only the activations' outlier columns keep their 16-/32-bit values.
  It counts how many columns it kept, so :func:`outlier_fraction` can report it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .act_quant import quantize_per_token, vectorwise_int8_matmul, w8a8_matmul
from .quantize import quantize
from .methods import quantize_as, register
from .quant_linear import QuantizedLinear
from .swap import Selection, check_skip, replace_linears

DEFAULT_THRESHOLD = 6.0


def check_threshold(threshold) -> float:
    """``threshold`` as a float >= 0 (``math.inf``: no outliers), or a ValueError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold) \
            or threshold < 0:
        raise ValueError(f"threshold must be a number >= 0 (6.0 in the paper; math.inf disables the 16-bit part), "
                         f"got {threshold!r}.")
    return float(threshold)


def outlier_columns(X: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """[in] bool: the columns j of X [n_tokens, in] where some |X[t, j]| >= threshold."""
    check_threshold(threshold)
    return (X.abs() >= threshold).any(dim=0)  # [in]


def decomposed_matmul(X: torch.Tensor, W: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """LLM.int8's ``X Wᵀ``: X [n_tokens, in], W [out, in] -> [n_tokens, out] in X's dtype.

    Outlier columns multiply in X's dtype; the others through vector-wise int8 (weight
    scales from the non-outlier columns of each row).
    """
    if X.dim() != 2 or W.dim() != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"decomposed_matmul needs X [n_tokens, in] and W [out, in], got {tuple(X.shape)} "
                         f"and {tuple(W.shape)}; reshape x to [-1, in] first.")
    outliers = outlier_columns(X, threshold)  # [in]
    Y = torch.zeros(X.shape[0], W.shape[0], dtype=torch.float32, device=X.device)  # [n_tokens, out]
    if outliers.any():
        Y = Y + (X[:, outliers] @ W[:, outliers].to(X.dtype).T).float()  # [n_tokens, |O|] x [|O|, out]
    if not outliers.all():
        Y = Y + vectorwise_int8_matmul(X[:, ~outliers], W[:, ~outliers])  # [n_tokens, in - |O|] x [in - |O|, out]
    return Y.to(X.dtype)


def decomposed_matmul_reference(X: torch.Tensor, W: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Slow reference for :func:`decomposed_matmul`: each output element summed column by column in float64."""
    n_tokens, in_features = X.shape
    out_features = W.shape[0]
    X64, W64 = X.double(), W.double()
    outlier = [bool((X64[:, j].abs() >= threshold).any()) for j in range(in_features)]
    rest = [j for j in range(in_features) if not outlier[j]]
    scale_X = [max((abs(float(X64[t, j])) for j in rest), default=0.0) / 127 for t in range(n_tokens)]
    scale_W = [max((abs(float(W64[o, j])) for j in rest), default=0.0) / 127 for o in range(out_features)]
    Y = torch.zeros(n_tokens, out_features, dtype=torch.float64)
    for t in range(n_tokens):
        for o in range(out_features):
            acc_fp, acc_int = 0.0, 0
            for j in range(in_features):
                if outlier[j]:
                    acc_fp += float(X64[t, j]) * float(W64[o, j])
                else:
                    q_x = round(float(X64[t, j]) / scale_X[t]) if scale_X[t] > 0 else 0
                    q_w = round(float(W64[o, j]) / scale_W[o]) if scale_W[o] > 0 else 0
                    acc_int += q_x * q_w
            Y[t, o] = acc_fp + acc_int * scale_X[t] * scale_W[o]
    return Y


class LLMInt8Linear(QuantizedLinear):
    """A linear layer computing LLM.int8's decomposition with int8 weights.

    Buffers: qweight [out, in] int8, scale [out, 1] float16, bias [out] or None.
    Counters (plain attributes): ``outlier_columns_seen`` and ``columns_seen``, summed over calls.
    """

    def __init__(self, in_features: int, out_features: int, threshold: float = DEFAULT_THRESHOLD,
                 bias: bool = False, device=None, bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.threshold = check_threshold(threshold)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.ones(out_features, 1, dtype=torch.float16, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)
        self.reset_counts()

    @classmethod
    def from_linear(cls, linear: nn.Linear, threshold: float = DEFAULT_THRESHOLD) -> "LLMInt8Linear":
        """Per-row absmax int8 of ``linear.weight`` (float16 scales); ``linear`` is untouched."""
        layer = cls(linear.in_features, linear.out_features, threshold, bias=linear.bias is not None,
                    device=linear.weight.device,
                    bias_dtype=linear.bias.dtype if linear.bias is not None else torch.float32)
        qt = quantize(linear.weight.detach(), 8, "channel", symmetric=True, scale_dtype=torch.float16)
        layer.qweight, layer.scale = qt.q.clone(), qt.scale.to(torch.float16).clone()  # [out, in], [out, 1]
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer

    def reset_counts(self) -> None:
        self.outlier_columns_seen, self.columns_seen = 0, 0

    @property
    def outlier_fraction(self) -> float:
        """Fraction of input columns computed in 16/32 bits, over all calls since the last reset."""
        return self.outlier_columns_seen / self.columns_seen if self.columns_seen else 0.0

    def dequantize_weight(self) -> torch.Tensor:
        return self.qweight.float() * self.scale.float()  # [out, in]

    def int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.qweight, self.scale

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """Outlier columns in x's dtype, the rest as vector-wise int8; returns x's dtype and leading shape."""
        X = x.reshape(-1, self.in_features)  # [..., in] -> [n_tokens, in]
        outliers = outlier_columns(X, self.threshold)  # [in]
        self.outlier_columns_seen += int(outliers.sum())
        self.columns_seen += self.in_features
        Y = torch.zeros(X.shape[0], self.out_features, dtype=torch.float32, device=x.device)  # [n_tokens, out]
        if outliers.any():
            W_O = self.qweight[:, outliers].to(x.dtype) * self.scale.to(x.dtype)  # [out, |O|]
            Y = Y + (X[:, outliers] @ W_O.T).float()
        if not outliers.all():
            q_X, scale_X = quantize_per_token(X[:, ~outliers])  # [n_tokens, in - |O|], [n_tokens, 1]
            Y = Y + w8a8_matmul(q_X, scale_X, self.qweight[:, ~outliers], self.scale)
        if self.bias is not None:
            Y = Y + self.bias.float()
        return Y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)  # [..., out]

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Slow reference: outlier part with a float64 matmul, int8 part as an int64-checked integer sum."""
        X = x.reshape(-1, self.in_features).double()  # [n_tokens, in]
        outliers = (X.abs() >= self.threshold).any(dim=0)
        Y = X[:, outliers] @ self.dequantize_weight().double()[:, outliers].T  # [n_tokens, out]
        if not outliers.all():
            q_X, scale_X = quantize_per_token(X[:, ~outliers].float())
            acc = q_X.long() @ self.qweight[:, ~outliers].long().T  # [n_tokens, out], exact
            Y = Y + acc.double() * scale_X.double() * self.scale.double().T
        if self.bias is not None:
            Y = Y + self.bias.double()
        return Y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def theoretical_nbytes(self) -> int:
        """Stored bytes: int8 weights, float16 per-row scales, bias."""
        return self.qweight.numel() + 2 * self.scale.numel() + self.bias_nbytes()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, threshold={self.threshold}"


def outlier_fraction(model: nn.Module) -> float:
    """Fraction of input columns kept in 16/32 bits, over every LLMInt8Linear and call since the last reset."""
    layers = [m for m in model.modules() if isinstance(m, LLMInt8Linear)]
    if not layers:
        raise ValueError("The model has no LLMInt8Linear layer; quantize it with llm_int8.quantize_model first.")
    seen = sum(layer.columns_seen for layer in layers)
    return sum(layer.outlier_columns_seen for layer in layers) / seen if seen else 0.0


def reset_outlier_counts(model: nn.Module) -> None:
    """Zero the column counters of every LLMInt8Linear (before measuring a new run)."""
    for m in model.modules():
        if isinstance(m, LLMInt8Linear):
            m.reset_counts()


@dataclass(frozen=True)
class LLMInt8Config:
    """Settings of LLM.int8.

    threshold: an input column with some |x| >= threshold stays in 16/32 bits (math.inf: plain vector-wise int8)
    skip:      name fragments of linear layers to keep in full precision
    """

    threshold: float = DEFAULT_THRESHOLD
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self):
        object.__setattr__(self, "threshold", check_threshold(self.threshold))
        object.__setattr__(self, "skip", check_skip(self.skip))


@register(LLMInt8Config)
def _apply(model: nn.Module, config: LLMInt8Config, *, calib, select: Selection, progress: bool) -> None:
    """Swap the selected linears for ``LLMInt8Linear`` (outliers are found per call: no calibration)."""
    replace_linears(model, lambda name, linear: LLMInt8Linear.from_linear(linear, config.threshold), select,
                    progress=progress, desc=f"LLM.int8 threshold {config.threshold:g}")


def quantize_model(model: nn.Module, config: LLMInt8Config | None = None, *, calib=None,
                   progress: bool = True, only=None) -> nn.Module:
    """Swap every ``nn.Linear`` not in ``config.skip`` (in ``only``, if given) for an :class:`LLMInt8Linear`,
    in place; return ``model``.

    ``calib`` is ignored: the outlier columns are found from each call's own activations.
    """
    return quantize_as(LLMInt8Config, model, config, calib=calib, progress=progress, only=only)
