"""Which kernel computes a QuantLinear's forward, and the ``kernel`` hooks that run them.

``QuantLinear.forward`` calls :func:`quant_linear_forward` for CUDA inputs when
:func:`supports` says the layer's format has a kernel, and dequantizes otherwise:

    n_bits = 4, any group size, symmetric or not, any g_idx      -> W4A16 (w4a16_matmul)
    n_bits = 8, one scale per row ("channel" or "tensor")         -> W8A16 (w8a16_matmul)
    anything else (2/3 bits, grouped 8 bits)                      -> dequantize + F.linear

Both functions also work as a layer's ``kernel`` hook (``kernel(x, layer) -> y``): set
``layer.kernel = quant_linear_forward`` to run the kernels on CPU tensors through the
interpreter (tests, notebook 09), or ``layer.kernel = w8a8_forward`` to quantize the
activations too (W8A8; changes the numbers, so never chosen automatically).
"""
from __future__ import annotations

import weakref

import torch

from .checks import ACTIVATION_DTYPES
from .w4a16 import w4a16_matmul
from .w8a16 import w8a16_matmul
from .w8a8 import w8a8_linear

_default_g_idx_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def supports(layer, x: torch.Tensor | None = None) -> bool:
    """True when a kernel handles ``layer``'s stored format (module docstring) and x's dtype (if given)."""
    if x is not None and x.dtype not in ACTIVATION_DTYPES:
        return False
    if layer.n_bits == 4:
        return True
    return layer.n_bits == 8 and layer.scale.shape[1] == 1


def g_idx_or_none(layer) -> torch.Tensor | None:
    """``layer.g_idx`` when act-order changed it, None when it is the default ``arange(in) // group_len``.

    Comparing on the GPU waits for it, so the answer is remembered per layer until g_idx is
    replaced or modified in place (its data pointer or version counter changes).
    """
    key = (layer.g_idx.data_ptr(), layer.g_idx._version)
    cached = _default_g_idx_cache.get(layer)
    if cached is None or cached[0] != key:
        cached = (key, torch.equal(layer.g_idx, layer.default_g_idx()))
        _default_g_idx_cache[layer] = cached
    return None if cached[1] else layer.g_idx


def quant_linear_forward(x: torch.Tensor, layer) -> torch.Tensor:
    """``x @ W_hat.T + bias`` through W4A16 or W8A16, for x [..., in_features]; y [..., out_features]."""
    if not supports(layer):
        raise ValueError(f"No kernel for n_bits={layer.n_bits}, scale {tuple(layer.scale.shape)}: the kernels take "
                         "4-bit layers, or 8-bit with group_size 'channel'/'tensor'. Use the dequantize path "
                         "(layer.kernel = None on a CPU tensor) for this layer.")
    X = x.reshape(-1, layer.in_features)  # [tokens, in]
    if layer.n_bits == 4:
        Y = w4a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, g_idx_or_none(layer), layer.bias)
    else:
        Y = w8a16_matmul(X, layer.qweight, layer.scale, layer.zero_point, layer.bias)
    return Y.reshape(*x.shape[:-1], layer.out_features)  # [..., out]


def w8a8_forward(x: torch.Tensor, layer) -> torch.Tensor:
    """A ``kernel`` hook for any quantized layer with a symmetric per-row int8 weight (``layer.int8_weight()``:
    an 8-bit symmetric per-channel QuantLinear, a W8A8Linear): quantize x per token, int8 x int8 matmul."""
    q_w, scale_w = layer.int8_weight()  # a ValueError, saying why, for other formats
    if getattr(layer, "input_scale", None) is not None:
        raise ValueError("w8a8_forward quantizes x per token; this layer has a static per-tensor input_scale "
                         "(act_scheme='per_tensor'): use its own forward, or act_scheme='per_token'.")
    X = x.reshape(-1, layer.in_features)  # [tokens, in]
    Y = w8a8_linear(X, q_w, scale_w, layer.bias)
    return Y.reshape(*x.shape[:-1], layer.out_features)  # [..., out]
