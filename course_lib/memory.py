"""How many bytes a model takes: measured, and predicted from the bit width.

Conventions: 1 GB = 10**9 bytes (what model cards use: "70B at FP16 is 140 GB");
MB = 10**6 bytes. A grouped quantizer stores, per weight, ``n_bits`` of integer plus, per
group of ``group_size`` weights, one scale (``scale_bits``) and optionally one zero point
(``zero_bits``), so its cost is

    bits_per_weight = n_bits + (scale_bits + zero_bits) / group_size
"""
from __future__ import annotations

import math

import torch
from torch import nn

GB = 10**9
MB = 10**6


def weight_bytes(n_params: int, n_bits: float) -> float:
    """Bytes of ``n_params`` weights at ``n_bits`` each, with no per-group overhead."""
    return n_params * n_bits / 8


def bits_per_weight(n_bits: int, group_size: int, scale_bits: int = 16, zero_bits: int = 0) -> float:
    """Average storage per weight for a grouped quantizer, overhead included."""
    if group_size <= 0:
        raise ValueError(f"group_size must be positive, got {group_size}.")
    return n_bits + (scale_bits + zero_bits) / group_size


def grouped_bytes(n_params: int, n_bits: int, group_size: int, scale_bits: int = 16, zero_bits: int = 0) -> float:
    """Bytes of ``n_params`` weights quantized in groups, scales and zero points included.

    The number of groups is rounded up: a last, partial group still needs its scale.
    """
    n_groups = math.ceil(n_params / group_size)
    return n_params * n_bits / 8 + n_groups * (scale_bits + zero_bits) / 8


def kv_cache_bytes(
    n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, batch_size: int = 1, bytes_per_element: float = 2
) -> float:
    """Bytes of the KV cache: a K and a V vector per layer, KV head, token and sequence.

        2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_element
    """
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_element


def kv_cache_bytes_for(config, seq_len: int, batch_size: int = 1, bytes_per_element: float = 2) -> float:
    """:func:`kv_cache_bytes` with the shape read from a Hugging Face config."""
    n_heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    n_kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    return kv_cache_bytes(config.num_hidden_layers, n_kv_heads, head_dim, seq_len, batch_size, bytes_per_element)


def unique_tensors(module: nn.Module):
    """Parameters and buffers of ``module``, each underlying storage once (tied weights share one)."""
    seen = set()
    for tensor in list(module.parameters()) + list(module.buffers()):
        key = (tensor.device, tensor.untyped_storage().data_ptr())
        if key in seen:
            continue
        seen.add(key)
        yield tensor


def memory_footprint(module: nn.Module) -> int:
    """Measured bytes of a module's parameters and buffers, shared storage counted once."""
    return sum(t.untyped_storage().nbytes() for t in unique_tensors(module))


def quantized_model_bytes(
    model: nn.Module,
    n_bits: int,
    group_size: int | None = None,
    scale_bits: int = 16,
    zero_bits: int = 0,
    other_bits: int = 16,
    skip: tuple[str, ...] = ("lm_head",),
) -> float:
    """Predicted bytes of ``model`` with every ``nn.Linear`` weight quantized.

    group_size None means one scale per output row (per channel). Linear layers whose
    name contains an entry of ``skip``, biases, norms and embeddings stay at ``other_bits``.
    A weight tied to another (``lm_head`` and the embedding) is counted once.
    """
    quantized_ptrs = set()
    total = 0.0
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear) or any(s in name for s in skip):
            continue
        W = layer.weight
        ptr = W.untyped_storage().data_ptr()
        if ptr in quantized_ptrs:
            continue
        quantized_ptrs.add(ptr)
        out_features, in_features = W.shape
        per_group = in_features if group_size is None else group_size
        total += out_features * grouped_bytes(in_features, n_bits, per_group, scale_bits, zero_bits)
    for tensor in unique_tensors(model):
        if tensor.untyped_storage().data_ptr() not in quantized_ptrs:
            total += tensor.numel() * other_bits / 8
    return total
