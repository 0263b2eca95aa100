"""Argument checks shared by the kernel wrappers: every error says what was wrong and what to do.

A Triton kernel does no checking of its own: a wrong dtype reads garbage, a wrong shape
reads past the end of a buffer. So each wrapper checks its arguments here, in Python,
before it launches anything. None of these checks reads tensor *values* (that would
synchronize with the GPU on every call); they look at dtypes, shapes and devices only.
"""
from __future__ import annotations

import torch

ACTIVATION_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def is_interpreted(kernel) -> bool:
    """True when ``kernel`` was decorated while ``TRITON_INTERPRET=1`` (it runs on CPU tensors)."""
    return type(kernel).__name__ == "InterpretedFunction"


def check_device(kernel, X: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    """All tensors on X's device; a CPU device needs the interpreter, which cannot do bfloat16."""
    for name, t in tensors.items():
        if t is not None and t.device != X.device:
            raise ValueError(f"{name} is on {t.device} but X is on {X.device}; move both to the same device.")
    if X.device.type == "cuda":
        if is_interpreted(kernel):
            raise ValueError(
                "The kernels were imported with TRITON_INTERPRET=1, which runs them on the CPU; "
                "unset it in a fresh process to run on the GPU, or pass CPU tensors."
            )
        return
    if X.device.type != "cpu":
        raise ValueError(f"The kernels run on CUDA tensors (or CPU tensors in the interpreter), got {X.device}.")
    if not is_interpreted(kernel):
        raise ValueError(
            "CPU tensors need Triton's interpreter: set the environment variable TRITON_INTERPRET=1 *before* "
            "course_lib.kernels is first imported (restart the kernel/process), or move the tensors to a GPU."
        )
    if X.dtype == torch.bfloat16:
        raise ValueError(
            "Triton's interpreter does not support bfloat16; on a CPU use float16 or float32 "
            "(X.to(torch.float16)), or run on a GPU."
        )


def check_activation(X: torch.Tensor, in_features: int | None, name: str = "X") -> None:
    """X is a 2-D float16/bfloat16/float32 tensor [M, in_features] (any width when in_features is None)."""
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(X).__name__}.")
    if X.dtype not in ACTIVATION_DTYPES:
        raise ValueError(
            f"{name} must be float16, bfloat16 or float32, got {X.dtype}; cast it with .to(torch.float16)."
        )
    if X.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D [M, K], got shape {tuple(X.shape)}; flatten the leading dims with "
            f"{name}.reshape(-1, {name}.shape[-1])."
        )
    if in_features is not None and X.shape[1] != in_features:
        raise ValueError(f"{name} has {X.shape[1]} columns but the weight has in_features={in_features}.")


def check_scale(scale: torch.Tensor, N: int, name: str = "scale") -> tuple[int, int]:
    """scale is float16 [rows, n_groups] with rows in (1, N); returns (rows, n_groups)."""
    if scale.dtype != torch.float16 or scale.dim() != 2 or scale.shape[0] not in (1, N):
        raise ValueError(
            f"{name} must be float16 [rows, n_groups] with rows = {N} (or 1 for 'tensor'), "
            f"got {scale.dtype} {tuple(scale.shape)}: pass QuantLinear.scale as stored."
        )
    return scale.shape[0], scale.shape[1]


def check_zero_point(zero_point: torch.Tensor | None, n_codes: int, n_bits: int) -> None:
    """zero_point is None (symmetric) or the packed uint8 stream of ``n_codes`` codes of ``n_bits``."""
    if zero_point is None:
        return
    nbytes = (n_codes * n_bits + 7) // 8
    if zero_point.dtype != torch.uint8 or zero_point.dim() != 1 or zero_point.numel() != nbytes:
        raise ValueError(
            f"zero_point must be the packed uint8 stream of {n_codes} codes of {n_bits} bits ({nbytes} bytes), "
            f"got {zero_point.dtype} {tuple(zero_point.shape)}: pass QuantLinear.zero_point as stored "
            "(None if symmetric)."
        )


def check_g_idx(g_idx: torch.Tensor | None, K: int) -> None:
    """g_idx is None (consecutive groups) or int32 [K] (its values are trusted: checking them would sync)."""
    if g_idx is not None and (g_idx.dtype != torch.int32 or g_idx.shape != (K,)):
        raise ValueError(f"g_idx must be int32 of shape [{K}], got {g_idx.dtype} {tuple(g_idx.shape)}.")


def check_bias(bias: torch.Tensor | None, N: int) -> None:
    if bias is not None and (not bias.dtype.is_floating_point or bias.shape != (N,)):
        raise ValueError(f"bias must be a float tensor of shape [{N}], got {bias.dtype} {tuple(bias.shape)}.")


def output_buffer(out: torch.Tensor | None, M: int, N: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``out`` checked (or a new [M, N] tensor of ``dtype``); the kernel writes every element."""
    if out is None:
        return torch.empty(M, N, dtype=dtype, device=device)
    if out.shape != (M, N) or out.dtype != dtype or out.device != torch.device(device) or not out.is_contiguous():
        raise ValueError(
            f"out must be a contiguous {dtype} tensor of shape [{M}, {N}] on {device}, "
            f"got {out.dtype} {tuple(out.shape)} on {out.device}; or pass out=None."
        )
    return out
