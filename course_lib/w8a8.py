"""W8A8: int8 weights *and* int8 activations, multiplied as integers.

A weight-only layer (``QuantLinear``) still computes in floating point. W8A8 quantizes the
input too, so the matmul itself runs on integers (what int8 tensor cores do):

    Y = X Wᵀ + b ≈ (q_X @ q_Wᵀ) * scale_X * scale_Wᵀ + b        (q_X @ q_Wᵀ summed in int32)

    weights      per output channel ("per_channel", scale_W [out, 1]) or one scale ("per_tensor")
    activations  per token, computed at run time ("per_token", scale_X [n_tokens, 1]), or one
                 static scale calibrated in advance ("per_tensor", scale_X [1, 1])

Per-token x per-channel is LLM.int8's *vector-wise* quantization; per-tensor weights with one
static per-tensor activation scale is the cheapest scheme (SmoothQuant's O3).
Through the one entry point, as every method (``methods.quantize``), or this module's
``quantize_model``, the same call for W8A8 configs only:

    quantize_model(model, W8A8Config(act_scheme="per_tensor"), calib=calibration_batches(tok, ...))

The static scheme needs ``calib`` (token ids, or the statistics :func:`activations.channel_stats`
returned); the dynamic one ignores it.

The kernel hook (``quant_linear.QuantizedLinear``'s contract): set ``layer.kernel`` on each
layer (a plain function set on the class would be bound as a method; wrap it in
``staticmethod`` there) to ``kernel(x, layer) -> y`` and ``forward`` calls it. The weight is
stored as an 8-bit symmetric per-channel ``QuantLinear`` stores it, and both give it through
``int8_weight()`` (``qweight`` [out, in] int8, ``scale`` [rows, 1] float16), so an int8 kernel
that quantizes x per token fits a per-token layer of either kind; a static layer must also
use ``layer.input_scale`` (None when per token).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .act_quant import quantize_per_tensor, quantize_per_token, static_scale, w8a8_matmul
from .activations import channel_stats
from .input_stats import Stats
from .methods import quantize_as, register
from .quant_linear import QuantizedLinear
from .quantize import check_n_bits, quantize
from .swap import Select, Selection, check_skip, find_linears, replace_linears

ACT_SCHEMES = ("per_token", "per_tensor")
WEIGHT_SCHEMES = ("per_channel", "per_tensor")


class W8A8Linear(QuantizedLinear):
    """``y ≈ x Wᵀ + b`` with integer weights, integer activations and an integer matmul.

    Buffers: qweight [out, in] int8; scale [out, 1] or [1, 1] float16 (the weight's);
    input_scale a float32 scalar (static per-tensor) or None (dynamic per-token); bias [out] or None.
    """

    def __init__(self, in_features: int, out_features: int, act_scheme: str = "per_token",
                 weight_scheme: str = "per_channel", w_bits: int = 8, a_bits: int = 8, bias: bool = False,
                 device=None, bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        _check_schemes(act_scheme, weight_scheme)
        self.in_features, self.out_features = in_features, out_features
        self.act_scheme, self.weight_scheme = act_scheme, weight_scheme
        self.w_bits, self.a_bits = check_n_bits(w_bits), check_n_bits(a_bits)
        rows = out_features if weight_scheme == "per_channel" else 1
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scale", torch.ones(rows, 1, dtype=torch.float16, device=device))
        input_scale = torch.ones((), device=device) if act_scheme == "per_tensor" else None
        self.register_buffer("input_scale", input_scale)
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, act_scheme: str = "per_token", weight_scheme: str = "per_channel",
                    w_bits: int = 8, a_bits: int = 8, input_absmax: float | None = None) -> "W8A8Linear":
        """Quantize ``linear.weight`` (absmax, float16 scales); ``input_absmax`` is the calibrated
        max |X| a static per-tensor scheme needs (ignored per token)."""
        layer = cls(linear.in_features, linear.out_features, act_scheme, weight_scheme, w_bits, a_bits,
                    bias=linear.bias is not None, device=linear.weight.device,
                    bias_dtype=linear.bias.dtype if linear.bias is not None else torch.float32)
        group_size = "channel" if weight_scheme == "per_channel" else "tensor"
        qt = quantize(linear.weight.detach(), w_bits, group_size, symmetric=True, scale_dtype=torch.float16)
        layer.qweight = qt.q.clone()  # [out, in] int8
        layer.scale = qt.scale.to(torch.float16).clone()  # [rows, 1]
        if act_scheme == "per_tensor":
            if input_absmax is None:
                raise ValueError("act_scheme='per_tensor' needs input_absmax, the calibrated max |X| of this layer's "
                                 "input (activations.channel_stats(...)[name].tensor_absmax).")
            layer.input_scale = static_scale(input_absmax, a_bits).to(linear.weight.device)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer

    def quantize_input(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q_X, scale_X)`` of X [n_tokens, in]: int8 codes and [n_tokens, 1] or [1, 1] scales."""
        if self.act_scheme == "per_token":
            return quantize_per_token(X, self.a_bits)
        return quantize_per_tensor(X, self.input_scale, self.a_bits), self.input_scale.reshape(1, 1)

    def dequantize_weight(self) -> torch.Tensor:
        """``W_hat = q_W * scale_W``, [out, in] float32."""
        return self.qweight.float() * self.scale.float()

    def int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.qweight, self.scale

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize x, integer matmul, rescale, add bias; returns x's dtype and leading shape."""
        X = x.reshape(-1, self.in_features)  # [..., in] -> [n_tokens, in]
        q_X, scale_X = self.quantize_input(X)
        Y = w8a8_matmul(q_X, scale_X, self.qweight, self.scale)  # [n_tokens, out] float32
        if self.bias is not None:
            Y = Y + self.bias.float()
        return Y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)  # [..., out]

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Slow reference: dequantize X and W, then a float64 matmul (equal up to float32 rounding)."""
        X = x.reshape(-1, self.in_features)  # [n_tokens, in]
        q_X, scale_X = self.quantize_input(X)
        X_hat = q_X.double() * scale_X.double()
        bias = None if self.bias is None else self.bias.double()
        Y = F.linear(X_hat, self.dequantize_weight().double(), bias)  # [n_tokens, out]
        return Y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def theoretical_nbytes(self) -> int:
        """Stored bytes: int8 weights, float16 weight scales, a float32 input scale, bias."""
        total = self.qweight.numel() + 2 * self.scale.numel()
        total += 4 if self.input_scale is not None else 0
        return total + self.bias_nbytes()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, w_bits={self.w_bits}, "
                f"a_bits={self.a_bits}, act_scheme={self.act_scheme!r}, weight_scheme={self.weight_scheme!r}")


def _check_schemes(act_scheme, weight_scheme) -> None:
    if act_scheme not in ACT_SCHEMES:
        raise ValueError(f"act_scheme must be one of {ACT_SCHEMES} (dynamic per token, or static per tensor), "
                         f"got {act_scheme!r}.")
    if weight_scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"weight_scheme must be one of {WEIGHT_SCHEMES}, got {weight_scheme!r}.")


@dataclass(frozen=True)
class W8A8Config:
    """Settings of W8A8 (integer weights x integer activations).

    act_scheme:    "per_token" (dynamic, no calibration) or "per_tensor" (static, needs calib)
    weight_scheme: "per_channel" (one scale per output row) or "per_tensor"
    w_bits/a_bits: bits of weights / activations, 2..8 (the codes are stored as int8)
    skip:          name fragments of linear layers to keep in full precision
    """

    act_scheme: str = "per_token"
    weight_scheme: str = "per_channel"
    w_bits: int = 8
    a_bits: int = 8
    skip: tuple[str, ...] = ("lm_head",)

    def __post_init__(self):
        _check_schemes(self.act_scheme, self.weight_scheme)
        check_n_bits(self.w_bits)
        check_n_bits(self.a_bits)
        object.__setattr__(self, "skip", check_skip(self.skip))

    calib_hint = ("act_scheme='per_tensor' calibrates a static scale and needs calib: pass "
                  "calib=data.calibration_batches(tokenizer, n_samples=..., seq_len=...), or use act_scheme='per_token'.")

    @property
    def needs_calib(self) -> bool:
        return self.act_scheme == "per_tensor"


def resolve_stats(model: nn.Module, calib, skip: Select, progress: bool) -> dict[str, Stats]:
    """``calib`` as ``{linear name: Stats}``: token ids are run through the model; a stats dict is used as is."""
    if isinstance(calib, dict):
        return calib
    if isinstance(calib, torch.Tensor):
        return channel_stats(model, calib, skip=skip, progress=progress)
    raise ValueError(f"calib must be token ids, a LongTensor [n_samples, seq_len] from data.calibration_batches, "
                     f"or the dict activations.channel_stats returned; got {type(calib).__name__}.")


def quantize_linears(model: nn.Module, config: W8A8Config, input_absmax: dict[str, float] | None,
                     select: Select | None = None, progress: bool = True) -> list[str]:
    """Swap every selected linear (None: outside ``config.skip``) for a :class:`W8A8Linear`; returns the
    names replaced.

    input_absmax: ``{linear name: calibrated max |X|}``, needed by the static per-tensor scheme.
    """
    select = config.skip if select is None else select
    if config.needs_calib:
        missing = [name for name, _ in find_linears(model, select) if name not in (input_absmax or {})]
        if missing:
            raise ValueError(f"No calibrated input absmax for {len(missing)} layer(s), e.g. {missing[0]!r}; "
                             "collect statistics on this model with activations.channel_stats(model, calib).")

    def make_layer(name: str, linear: nn.Linear) -> W8A8Linear:
        absmax = input_absmax[name] if config.needs_calib else None
        return W8A8Linear.from_linear(linear, config.act_scheme, config.weight_scheme, config.w_bits,
                                      config.a_bits, input_absmax=absmax)

    return replace_linears(model, make_layer, select, progress=progress,
                           desc=f"W{config.w_bits}A{config.a_bits} {config.act_scheme}")


@register(W8A8Config)
def _apply(model: nn.Module, config: W8A8Config, *, calib, select: Selection, progress: bool) -> None:
    """Swap the selected linears for ``W8A8Linear``; a static scheme calibrates its input scales first."""
    input_absmax = None
    if config.needs_calib:
        stats = resolve_stats(model, calib, select, progress)
        input_absmax = {name: st.tensor_absmax for name, st in stats.items()}
    quantize_linears(model, config, input_absmax, select, progress)


def quantize_model(model: nn.Module, config: W8A8Config | None = None, *, calib=None,
                   progress: bool = True, only=None) -> nn.Module:
    """Swap every ``nn.Linear`` not in ``config.skip`` (in ``only``, if given) for a :class:`W8A8Linear`,
    in place; return ``model``.

    calib: token ids [n_samples, seq_len] (or channel_stats' dict) for act_scheme="per_tensor";
    ignored per token.
    """
    return quantize_as(W8A8Config, model, config, calib=calib, progress=progress, only=only)
