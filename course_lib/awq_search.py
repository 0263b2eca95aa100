"""AWQ's two searches for one group of linears: the per-input-channel scale, then the clip range.

**Scale search.** Linears that read the same input X [n_tokens, in] (q, k and v after the
attention norm) share one scale vector s [in]. Scaling the weight's input columns up by s
and the input down by s leaves the float output unchanged, but moves the rounding error:

    s(α) = m^α / sqrt(max(m^α) · min(m^α)),     m = mean_t |X[t, :]|   (clamped at 1e-4)
    err(α) = Σ_layers ‖Q(W·s)(s⁻¹X) − WX‖² / n_tokens
           = Σ_layers tr(ΔW C ΔWᵀ),   ΔW = Q(W·s)·s⁻¹ − W,   C = XᵀX / n_tokens  (= H / 2, GPTQ's H)

for α on the grid 0, 1/n_grid, ..., (n_grid−1)/n_grid, and keeps the α of least error.
The normalisation (the reference implementation's) centres s around 1 in log scale. At
α = 0, s = 1 and Q(W·s)·s⁻¹ is exactly round-to-nearest, and α = 0 is always on the grid,
so the chosen scale is never worse than RTN on this objective. s is llm-awq's, from the
activations alone; AutoAWQ's default (``duo_scaling=True``) uses m^α / (w^(1−α) + 1e-4) instead,
w the weights' mean magnitude per input channel relative to their group's absmax.

The objective is the sum of the *linear* outputs' squared errors (over q, k and v; over gate
and up), not the reference's: the authors' code (llm-awq, and AutoAWQ's ``_search_best_scale``)
measures the output of the module the scales feed: the whole self-attention for q/k/v, the
whole MLP for gate/up, and the one linear only where a group is a single linear (down_proj,
o_proj). Per linear, the error needs only C ([in, in], collected once per block) and no
re-run of softmax attention or of the SiLU-gated product per α; it is the error quantization
causes directly. It cannot see what the module does with those errors afterwards: attention
and the SiLU(gate) · up product can amplify some and cancel others.
:func:`search_scale_module` evaluates the reference's objective on one module, to measure
the difference (notebook 06); the driver (``awq.quantize_model``) uses the per-linear one.

**Clip search.** Per output row and input group, shrink the weight range to
[r·min, r·max] (r = 1, 1 − 1/n_grid, ..., > 1 − max_shrink), quantize, and keep the r of
least output error of that group alone, Δw_gᵀ C_gg Δw_g (C_gg: the group's diagonal block
of C, as the reference measures each group independently). r ≤ 1, so a range never widens,
and r = 1 (no clipping) is always a candidate. The reference clamps to [−r·max|w|, r·max|w|],
symmetric although its grid has a zero point, so at first only the end of larger magnitude
moves; here both ends of [min, max], the range the asymmetric grid spans, shrink by r. The
reference also measures on 512 tokens sampled from the calibration set; C here holds them all.

Fast paths evaluate the error through C, batched over the grid; ``*_reference`` functions
loop over the grid and compute the outputs from X itself in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .quantize import QuantizedTensor, fake_quantize, quantize


def quantize_fp16(W: torch.Tensor, n_bits: int, group_size, symmetric: bool) -> QuantizedTensor:
    """RTN of ``W`` [rows, in] with float16 scales, the grid ``QuantLinear`` stores."""
    return quantize(W, n_bits, group_size, symmetric, scale_dtype=torch.float16)


def pseudo_quantize(W: torch.Tensor, n_bits: int, group_size, symmetric: bool) -> torch.Tensor:
    """``W_hat = Q(W)`` (float32, W's shape): quantize then dequantize, float16 scales."""
    return fake_quantize(W, n_bits, group_size, symmetric, scale_dtype=torch.float16)


def alpha_grid(n_grid: int) -> torch.Tensor:
    """[n_grid]: 0, 1/n_grid, ..., (n_grid − 1)/n_grid."""
    return torch.arange(n_grid, dtype=torch.float32) / n_grid


def awq_scale(mean_abs: torch.Tensor, alpha: float) -> torch.Tensor:
    """s = m^α, clamped at 1e-4, divided by sqrt(max(s)·min(s)) [in]; all ones at α = 0."""
    s = mean_abs.float().pow(float(alpha)).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


def scaled_error(Ws: list[torch.Tensor], C: torch.Tensor, s: torch.Tensor, n_bits, group_size, symmetric) -> float:
    """Σ_layers tr(ΔW C ΔWᵀ), ΔW = Q(W·s)·s⁻¹ − W: the group's mean squared output error."""
    W = torch.cat([w.float() for w in Ws])  # [sum of out, in]
    dW = pseudo_quantize(W * s, n_bits, group_size, symmetric) / s - W  # [sum of out, in]
    return float(((dW @ C) * dW).sum())


@dataclass
class ScaleSearch:
    """The scale search of one group: the grid, its errors, the chosen α and s [in]."""

    alphas: torch.Tensor
    errors: torch.Tensor
    best_alpha: float
    scale: torch.Tensor


@torch.no_grad()
def search_scale(Ws: list[torch.Tensor], C: torch.Tensor, mean_abs: torch.Tensor, n_bits: int = 4,
                 group_size=64, symmetric: bool = False, n_grid: int = 20) -> ScaleSearch:
    """Grid search of α for the linears ``Ws`` (each [out_i, in]) reading an input with C [in, in].

    The grid is evaluated in chunks of α to bound memory: [chunk, sum of out, in] at a time.
    """
    W = torch.cat([w.detach().float() for w in Ws])  # [sum of out, in]
    C = C.float().to(W.device)
    alphas = alpha_grid(n_grid)
    errors = torch.empty(n_grid)
    chunk = max(1, int(2**24 // W.numel()))
    for start in range(0, n_grid, chunk):
        a = alphas[start:start + chunk]
        s = torch.stack([awq_scale(mean_abs, float(x)) for x in a]).to(W.device)  # [c, in]
        Wc = (W[None] * s[:, None, :]).reshape(-1, W.shape[1])  # [c * sum of out, in]: rows are independent
        dW = (pseudo_quantize(Wc, n_bits, group_size, symmetric).reshape(len(a), *W.shape)
              / s[:, None, :] - W[None])  # [c, sum of out, in]
        errors[start:start + len(a)] = ((dW @ C) * dW).sum(dim=(1, 2)).cpu()
    best = int(torch.argmin(errors))  # the first minimum: α = 0 wins ties
    return ScaleSearch(alphas, errors, float(alphas[best]), awq_scale(mean_abs, float(alphas[best])).to(W.device))


@torch.no_grad()
def search_scale_reference(Ws: list[torch.Tensor], X: torch.Tensor, n_bits: int = 4, group_size=64,
                           symmetric: bool = False, n_grid: int = 20) -> ScaleSearch:
    """Slow reference: one α at a time, the outputs ‖Q(W·s)(s⁻¹X) − WX‖² / n computed from X in float64."""
    X = X.reshape(-1, X.shape[-1]).double()  # [n_tokens, in]
    mean_abs = X.abs().mean(dim=0).float()
    alphas = alpha_grid(n_grid)
    errors = torch.empty(n_grid)
    for i, alpha in enumerate(alphas.tolist()):
        s = awq_scale(mean_abs, alpha)
        total = 0.0
        for W in Ws:
            Q = pseudo_quantize(W.float() * s, n_bits, group_size, symmetric).double()  # Q(W·s) [out, in]
            Y_hat = (X / s.double()) @ Q.T  # [n_tokens, out]
            total += float(((Y_hat - X @ W.double().T) ** 2).sum()) / X.shape[0]
        errors[i] = total
    best = int(torch.argmin(errors))
    return ScaleSearch(alphas, errors, float(alphas[best]), awq_scale(mean_abs, float(alphas[best])))


def _first_output(out) -> torch.Tensor:
    """A module's main output: the first element when it returns a tuple (attention returns (output, weights))."""
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def search_scale_module(forward, linears: list[torch.nn.Linear], mean_abs: torch.Tensor, n_bits: int = 4,
                        group_size=64, symmetric: bool = False, n_grid: int = 20) -> ScaleSearch:
    """The reference's scale objective: the error of the output of the module the scales feed.

    forward:  a callable without arguments that runs that module (self-attention, the MLP, or the one
              linear) on its recorded input and returns its output [..., d] (or a tuple whose first
              element it is)
    linears:  the ``nn.Linear`` modules of the group, inside that module; mean_abs [in]: their input's mean |x|

    For each α, every linear's weight W is replaced by Q(W·s)/s (what the folded and quantized layer
    computes on the unscaled input) and err(α) = ‖forward() − float output‖² / n_tokens, in float64; the
    weights are put back afterwards, even on an error. The reference takes the mean over all entries
    instead of dividing by tokens: the same α wins. With ``forward`` returning the group's linear outputs
    concatenated, this is :func:`search_scale_reference`'s objective.
    """
    originals = [linear.weight.detach().clone() for linear in linears]
    reference = _first_output(forward()).double()  # [..., d]
    n_tokens = reference.numel() // reference.shape[-1]
    alphas = alpha_grid(n_grid)
    errors = torch.empty(n_grid)
    try:
        for i, alpha in enumerate(alphas.tolist()):
            s = awq_scale(mean_abs, alpha).to(originals[0].device)  # [in]
            for linear, W in zip(linears, originals):
                linear.weight.copy_(pseudo_quantize(W.float() * s, n_bits, group_size, symmetric) / s)
            errors[i] = float(((_first_output(forward()).double() - reference) ** 2).sum()) / n_tokens
    finally:
        for linear, W in zip(linears, originals):
            linear.weight.copy_(W)
    best = int(torch.argmin(errors))  # the first minimum, as in search_scale
    return ScaleSearch(alphas, errors, float(alphas[best]), awq_scale(mean_abs, float(alphas[best])))


# ---------------------------------------------------------------- clipping

def shrink_ratios(n_grid: int = 20, max_shrink: float = 0.5) -> list[float]:
    """1, 1 − 1/n_grid, ... while the shrink stays below ``max_shrink`` (10 ratios by default)."""
    return [1 - i / n_grid for i in range(max(1, int(max_shrink * n_grid)))]


def _group_len(group_size, in_features: int) -> int:
    return group_size if isinstance(group_size, int) else in_features


def clip_to(W: torch.Tensor, ratio: torch.Tensor, group_size) -> torch.Tensor:
    """W [out, in] clamped per (row, group) to [r·min, r·max]; ratio [out, n_groups] (or a scalar)."""
    out_features, in_features = W.shape
    g = _group_len(group_size, in_features)
    Wg = W.float().reshape(out_features, in_features // g, g)  # [out, n_groups, g]
    ratio = torch.as_tensor(ratio, dtype=Wg.dtype, device=W.device).expand(out_features, in_features // g)[..., None]
    lo, hi = Wg.amin(dim=-1, keepdim=True) * ratio, Wg.amax(dim=-1, keepdim=True) * ratio  # [out, n_groups, 1]
    return torch.minimum(torch.maximum(Wg, lo), hi).reshape(out_features, in_features)


@torch.no_grad()
def search_clip(W: torch.Tensor, C: torch.Tensor, n_bits: int = 4, group_size=64, symmetric: bool = False,
                n_grid: int = 20, max_shrink: float = 0.5) -> torch.Tensor:
    """The best shrink ratio per (row, group), [out, n_groups], on Δw_gᵀ C_gg Δw_g."""
    W = W.detach().float()
    out_features, in_features = W.shape
    g = _group_len(group_size, in_features)
    n_groups = in_features // g
    idx = torch.arange(n_groups, device=W.device)
    C_blocks = C.float().to(W.device).reshape(n_groups, g, n_groups, g)[idx, :, idx, :]  # [n_groups, g, g]
    best_err = torch.full((out_features, n_groups), float("inf"), device=W.device)
    best_ratio = torch.ones(out_features, n_groups, device=W.device)
    for r in shrink_ratios(n_grid, max_shrink):
        dW = pseudo_quantize(clip_to(W, r, group_size), n_bits, group_size, symmetric) - W  # [out, in]
        dWg = dW.reshape(out_features, n_groups, g)  # [out, n_groups, g]
        dWt = dWg.transpose(0, 1)  # [n_groups, out, g]
        err = ((dWt @ C_blocks) * dWt).sum(dim=-1).T  # [out, n_groups]: Δw_gᵀ C_gg Δw_g, one bmm
        better = err < best_err  # strict: the larger ratio (less clipping) wins ties
        best_err = torch.where(better, err, best_err)
        best_ratio = torch.where(better, torch.full_like(best_ratio, r), best_ratio)
    return best_ratio


@torch.no_grad()
def search_clip_reference(W: torch.Tensor, X: torch.Tensor, n_bits: int = 4, group_size=64, symmetric: bool = False,
                          n_grid: int = 20, max_shrink: float = 0.5) -> torch.Tensor:
    """Slow reference of :func:`search_clip`: per ratio, per group, the partial outputs from X in float64."""
    X = X.reshape(-1, X.shape[-1]).double()  # [n_tokens, in]
    W = W.detach().float()
    out_features, in_features = W.shape
    g = _group_len(group_size, in_features)
    errs = []
    for r in shrink_ratios(n_grid, max_shrink):
        dW = (pseudo_quantize(clip_to(W, r, group_size), n_bits, group_size, symmetric) - W).double()
        per_group = [((X[:, j:j + g] @ dW[:, j:j + g].T) ** 2).mean(dim=0) for j in range(0, in_features, g)]
        errs.append(torch.stack(per_group, dim=1))  # [out, n_groups]
    errs = torch.stack(errs)  # [n_ratios, out, n_groups]
    ratios = torch.tensor(shrink_ratios(n_grid, max_shrink))
    return ratios[errs.argmin(dim=0)].float()  # argmin returns the first minimum: the larger ratio
