"""The quantized linear layers' one contract, and QuantLinear: packed integer weights, dequantized.

:class:`QuantizedLinear` is what every quantized layer of the course is (``QuantLinear`` here;
``W8A8Linear``, ``LLMInt8Linear`` and ``NF4Linear`` with their methods): ``in_features``,
``out_features``, ``bias``; ``forward`` that calls the ``kernel`` hook when one is set and the
layer's own ``compute`` otherwise; ``dequantize_weight()`` and ``theoretical_nbytes()``; and
``int8_weight()``, the symmetric per-row int8 weight an int8 kernel reads, where the layer
has one. Code that takes any quantized layer (swaps, sizes, kernels) relies on these alone.

QuantLinear replaces ``nn.Linear(in_features, out_features)``, computing

    y = x @ W_hat.T + bias,     W_hat[o, i] = (q[o, i] - zero_point[o, g_idx[i]]) * scale[o, g_idx[i]]

What it stores (buffers, so ``state_dict`` and safetensors carry them):

    qweight     n_bits == 8: the codes q themselves, [out, in], int8 (symmetric) or uint8
                n_bits <  8: ``pack_bits`` of each row,  [out, ceil(in * n_bits / 8)] uint8
                             (symmetric codes offset by +2**(n_bits-1) first)
    scale       [rows, n_groups] float16   (rows = out, or 1 for "tensor"; n_groups = 1 unless grouped)
    zero_point  asymmetric only: the [rows, n_groups] codes flattened row-major and packed
                with ``pack_bits``, [ceil(rows * n_groups * n_bits / 8)] uint8; None when symmetric
    g_idx       [in] int32, the group of each input column: arange(in) // group_size by default
                (all zeros for "channel"/"tensor"). GPTQ's act-order permutes it later, so the
                dequantization always goes through g_idx.
    bias        [out] in the original dtype, or None

so its size in bytes, :meth:`QuantLinear.theoretical_nbytes`, is

    out * ceil(in * n_bits / 8) + 2 * rows * n_groups + ceil(rows * n_groups * n_bits / 8) [asym]
        + 4 * in + out * bias.element_size() [bias]

which equals ``memory.grouped_bytes(out * in, n_bits, group_len, scale_bits=16,
zero_bits=n_bits if asymmetric else 0) + 4 * in + bias bytes`` whenever in * n_bits and
rows * n_groups * n_bits are multiples of 8 (otherwise rows are padded to whole bytes).

The kernel hook: ``forward`` dequantizes the whole weight and calls ``F.linear``. Set
``layer.kernel`` (or ``QuantLinear.kernel`` for every layer) to a callable
``kernel(x, layer) -> y`` and ``forward`` calls it instead; the Triton kernels of notebook
09 plug in there and read ``layer.qweight``, ``layer.scale``, ``layer.zero_point``, ``layer.g_idx``.
With no hook set, a CUDA input that needs no gradient goes through those kernels
(``course_lib.kernels.dispatch``, imported only then) when they support the layer's format;
CPU inputs, other formats, and a machine without triton keep the dequantize path.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .packing import pack_bits, packed_nbytes, unpack_bits
from .quantize import QuantizedTensor, check_group_size, check_n_bits, quantize


class QuantizedLinear(nn.Module):
    """The contract of a quantized linear layer (module docstring); subclasses implement the methods below."""

    in_features: int
    out_features: int
    kernel = None  # optional callable(x, layer) -> y that replaces compute(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self.kernel(x, self)`` when a kernel is set, else ``self.compute(x)``; x [..., in] -> [..., out]."""
        if self.kernel is not None:
            return self.kernel(x, self)
        return self.compute(x)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's own forward, in x's dtype."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute(x).")

    def dequantize_weight(self) -> torch.Tensor:
        """The weight the layer stands for, W_hat [out, in] float32."""
        raise NotImplementedError(f"{type(self).__name__} must implement dequantize_weight().")

    def theoretical_nbytes(self) -> int:
        """Bytes of everything the layer stores (weights, scales, zero points, indices, bias)."""
        raise NotImplementedError(f"{type(self).__name__} must implement theoretical_nbytes().")

    def int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q_W [out, in] int8, scale_W [rows, 1] float16)`` of a symmetric per-row 8-bit weight; a
        ValueError for layers stored otherwise."""
        raise ValueError(f"{type(self).__name__} stores no symmetric per-row int8 weight.")

    def bias_nbytes(self) -> int:
        return 0 if self.bias is None else self.bias.numel() * self.bias.element_size()


class QuantLinear(QuantizedLinear):
    """A linear layer with ``n_bits`` integer weights, per-tensor, per-channel or per-group scales."""

    def __init__(
        self, in_features: int, out_features: int, n_bits: int = 4, group_size: int | str = 64,
        symmetric: bool = False, bias: bool = False, device=None, bias_dtype: torch.dtype = torch.float32,
    ):
        """An empty layer with buffers of the right shapes (fill it with :meth:`from_quantized`)."""
        super().__init__()
        check_n_bits(n_bits)
        check_group_size(group_size, (out_features, in_features))
        self.in_features, self.out_features = in_features, out_features
        self.n_bits, self.group_size, self.symmetric = n_bits, group_size, symmetric
        rows = 1 if group_size == "tensor" else out_features
        group_len = group_size if isinstance(group_size, int) else in_features
        n_groups = in_features // group_len
        if n_bits == 8:
            dtype = torch.int8 if symmetric else torch.uint8
            qweight = torch.empty(out_features, in_features, dtype=dtype, device=device)
        else:
            qweight = torch.empty(out_features, packed_nbytes(in_features, n_bits), dtype=torch.uint8, device=device)
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", torch.ones(rows, n_groups, dtype=torch.float16, device=device))
        zero_point = None
        if not symmetric:
            zero_point = torch.zeros(packed_nbytes(rows * n_groups, n_bits), dtype=torch.uint8, device=device)
        self.register_buffer("zero_point", zero_point)
        g_idx = torch.arange(in_features, device=device) // group_len  # [in]: column i is in group i // group_len
        self.register_buffer("g_idx", g_idx.to(torch.int32))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype, device=device) if bias else None)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_quantized(cls, qt: QuantizedTensor, bias: torch.Tensor | None = None) -> "QuantLinear":
        """Pack a :class:`QuantizedTensor` of a 2-D weight [out, in] into a layer.

        Scales are stored as float16: quantize with ``scale_dtype=torch.float16`` (as
        :meth:`from_linear` does) so the codes were chosen for the scale that is stored.
        """
        if qt.q.dim() != 2:
            raise ValueError(f"QuantLinear needs a 2-D weight [out, in], got codes of shape {tuple(qt.q.shape)}.")
        out_features, in_features = qt.q.shape
        layer = cls(in_features, out_features, qt.n_bits, qt.group_size, qt.symmetric, bias=bias is not None,
                    device=qt.q.device, bias_dtype=bias.dtype if bias is not None else torch.float32)
        if qt.n_bits == 8:
            layer.qweight = qt.q.clone()  # [out, in]
        else:
            layer.qweight = pack_bits(qt.q, qt.n_bits, signed=qt.symmetric).clone()  # [out, ceil(in * n_bits / 8)]
        layer.scale = qt.scale.to(torch.float16).clone()  # [rows, n_groups]
        if not qt.symmetric:
            layer.zero_point = pack_bits(qt.zero_point.reshape(-1), qt.n_bits).clone()  # [rows * n_groups] -> packed
        if bias is not None:
            layer.bias = bias.detach().clone()
        return layer

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, n_bits: int = 4, group_size: int | str = 64, symmetric: bool = False
    ) -> "QuantLinear":
        """Round-to-nearest quantization of ``linear.weight`` into a new layer (``linear`` is untouched)."""
        qt = quantize(linear.weight.detach(), n_bits, group_size, symmetric, scale_dtype=torch.float16)
        return cls.from_quantized(qt, linear.bias)

    # ------------------------------------------------------------ decoding

    def codes(self) -> torch.Tensor:
        """The integer codes q, [out, in]: int8 in [-qmax, qmax] (symmetric) or uint8 in [0, 2**n_bits - 1]."""
        if self.n_bits == 8:
            return self.qweight
        return unpack_bits(self.qweight, self.n_bits, self.in_features, signed=self.symmetric)  # [out, in]

    def zero_points(self) -> torch.Tensor | None:
        """The zero-point codes, [rows, n_groups] uint8 (None when symmetric)."""
        if self.zero_point is None:
            return None
        rows, n_groups = self.scale.shape
        return unpack_bits(self.zero_point, self.n_bits, rows * n_groups).reshape(rows, n_groups)  # [rows, n_groups]

    def default_g_idx(self) -> torch.Tensor:
        """``arange(in) // group_len`` (zeros for "channel"/"tensor"): consecutive columns share a group."""
        rows, n_groups = self.scale.shape
        group_len = self.in_features // n_groups
        return (torch.arange(self.in_features, device=self.g_idx.device) // group_len).to(torch.int32)

    def dequantize_weight(self) -> torch.Tensor:
        """``W_hat`` [out, in] float32, each column decoded with the grid of its group ``g_idx``.

        Fast path while g_idx is the default grouping: broadcast each group's scale over a
        [out, n_groups, group_len] view instead of gathering an [out, in] scale matrix.
        """
        if not torch.equal(self.g_idx, self.default_g_idx()):
            return self.dequantize_weight_reference()
        rows, n_groups = self.scale.shape
        q = self.codes().float().reshape(-1, n_groups, self.in_features // n_groups)  # [out, n_groups, group_len]
        zero_point = self.zero_points()
        if zero_point is not None:
            q = q - zero_point.float()[..., None]  # [rows, n_groups, 1] broadcasts over group_len (and out)
        return (q * self.scale.float()[..., None]).reshape(self.out_features, self.in_features)  # [out, in]

    def dequantize_weight_reference(self) -> torch.Tensor:
        """Slow reference for :meth:`dequantize_weight`: gathers the grid of every column through g_idx."""
        g_idx = self.g_idx.long()
        scale = self.scale.float()[:, g_idx]  # [rows, in]
        W_hat = self.codes().float()  # [out, in]
        zero_point = self.zero_points()
        if zero_point is not None:
            W_hat = W_hat - zero_point.float()[:, g_idx]  # [rows, in] broadcasts over out
        return W_hat * scale

    def to_quantized(self) -> QuantizedTensor:
        """The stored weight as a :class:`QuantizedTensor` (valid while g_idx is the default arange // group_size)."""
        return QuantizedTensor(self.codes().clone(), self.scale.float(), self.zero_points(), self.n_bits,
                               self.group_size, self.symmetric)

    def int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_bits != 8 or not self.symmetric or self.scale.shape[1] != 1:
            raise ValueError("An int8 weight needs QuantLinear(n_bits=8, symmetric=True, group_size='channel' or "
                             f"'tensor'), got n_bits={self.n_bits}, symmetric={self.symmetric}, "
                             f"group_size={self.group_size!r}.")
        return self.qweight, self.scale

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_hat.T + bias`` in x's dtype (through the Triton kernels for CUDA inputs they support)."""
        triton_forward = _triton_forward(x, self)
        if triton_forward is not None:
            return triton_forward(x, self)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize_weight().to(x.dtype), bias)

    # ------------------------------------------------------------ size and description

    def theoretical_nbytes(self) -> int:
        """Bytes the stored layout needs, from the formula in the module docstring."""
        rows, n_groups = self.scale.shape
        total = self.out_features * packed_nbytes(self.in_features, self.n_bits)  # qweight
        total += 2 * rows * n_groups  # float16 scales
        if not self.symmetric:
            total += packed_nbytes(rows * n_groups, self.n_bits)  # packed zero points
        total += 4 * self.in_features  # int32 g_idx
        return total + self.bias_nbytes()

    def config(self) -> dict:
        """What a skeleton needs to rebuild this layer before loading its buffers."""
        return {"in_features": self.in_features, "out_features": self.out_features, "n_bits": self.n_bits,
                "group_size": self.group_size, "symmetric": self.symmetric, "bias": self.bias is not None}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, n_bits={self.n_bits}, "
                f"group_size={self.group_size!r}, symmetric={self.symmetric}, bias={self.bias is not None}")


def _triton_forward(x: torch.Tensor, layer: QuantLinear):
    """``course_lib.kernels``' forward when x is on CUDA, needs no gradient, and the format has a kernel; else None."""
    if not x.is_cuda or (x.requires_grad and torch.is_grad_enabled()):
        return None
    try:
        from .kernels import dispatch  # imported here: course_lib works without triton or a GPU
    except ImportError:
        return None
    return dispatch.quant_linear_forward if dispatch.supports(layer, x) else None


class _CachedDense:
    """A ``kernel`` that holds one layer's dequantized weight and reuses it on every call."""

    def __init__(self, layer: QuantLinear):
        self.W_hat = layer.dequantize_weight()

    def __call__(self, x: torch.Tensor, layer: QuantLinear) -> torch.Tensor:
        bias = None if layer.bias is None else layer.bias.to(x.dtype)
        return F.linear(x, self.W_hat.to(x.dtype), bias)


@contextmanager
def cached_dequantization(model: nn.Module):
    """Within the block, every ``QuantLinear`` dequantizes once and reuses ``W_hat``.

    Outputs are identical to the normal forward (the same ``W_hat``, the same ``F.linear``);
    only the time changes: a perplexity run stops re-unpacking every weight on every window.
    The price is a dense float32 copy of each weight while the block runs, so measure
    memory outside it. Layers that already have a kernel keep it.
    """
    layers = [m for m in model.modules() if isinstance(m, QuantLinear) and m.__dict__.get("kernel") is None]
    try:
        for layer in layers:
            layer.kernel = _CachedDense(layer)
        yield model
    finally:
        for layer in layers:
            layer.__dict__.pop("kernel", None)
