"""GPTQ (Frantar et al., 2022): quantize a weight column by column, pushing each error forward.

For one layer with Hessian H = 2/n Σ x xᵀ (see ``hessian.py``) GPTQ minimises the output
error ``½ tr(ΔW H ΔWᵀ)`` greedily. Column j is rounded to the grid, and its error is
spread over the columns not yet quantized, weighted by the inverse Hessian (the Optimal
Brain Surgeon update):

    err_j     = (w_j − Q(w_j)) / [H⁻¹]_jj
    W[:, j:] −= err_j · [H⁻¹]_j,j:                                    then drop j from H⁻¹

The paper's three tricks make it fast and stable, all kept here:

1. Cholesky: the successive H⁻¹ rows are the rows of the upper Cholesky factor U of
   H⁻¹ (up to a factor), so no inverse is ever updated: err_j = (w_j − Q(w_j)) / U_jj,
   update with U_j,j:.
2. Lazy batches: columns are processed in blocks of ``block_size``; inside a block the
   updates touch only the block, and the rest of W gets one matrix product per block.
3. Damping: λ = damp_percent · mean(diag H) on the diagonal.

Groups: a group's scale and zero point are fitted when its first column is reached,
on the weights as updated so far (``grid_from="updated"``: the lazy batches then only reorder the
arithmetic, so the result does not depend on ``block_size``). The authors' code fits it on the
weights as they stood when the block began (``grid_from="block_start"``), which does depend on
``block_size``; benchmarks/gptq_seeds.py compares the two over calibration seeds. Act-order processes columns by decreasing diag(H);
groups are then consecutive in that order, and ``g_idx`` records each original column's
group, which is how ``QuantLinear`` decodes it.

``gptq_quantize_reference`` is the slow, direct form (float64, explicit inverse
updates, no blocks, no Cholesky) the fast path is tested against.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from . import calibration
from .blockwise import check_block_targets, check_calibration, run_block, sequential_blocks
from .hessian import inverse_hessian_factor
from .hooks import record_inputs
from .input_stats import HessianAccumulator
from .methods import GridConfig, quantize_as, register
from .quant_linear import QuantLinear
from .quantize import GridSpec, QuantizedTensor, check_group_size, dequantize, quantize_with
from .swap import Selection
from .wiring import wiring_for


@dataclass
class GPTQResult:
    """One quantized weight. Columns are in the layer's original order.

    q [out, in] codes; scale [rows, n_groups] (float32 holding float16 values);
    zero_point [rows, n_groups] uint8 or None; g_idx [in] int32, the group of each column;
    W_hat [out, in] float32, the dequantized weight; grid, the grid it is on; damp_percent, the damping used.
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor | None
    g_idx: torch.Tensor
    W_hat: torch.Tensor
    grid: GridSpec
    damp_percent: float

    def rows(self, start: int, end: int) -> "GPTQResult":
        """The result for output rows [start, end): one layer out of a stacked call (not for "tensor")."""
        zero_point = None if self.zero_point is None else self.zero_point[start:end]
        # each layer owns its g_idx: one tensor shared by q, k and v is saved once and does not load back
        return GPTQResult(self.q[start:end], self.scale[start:end], zero_point, self.g_idx.clone(),
                          self.W_hat[start:end], self.grid, self.damp_percent)

    def to_quant_linear(self, bias: torch.Tensor | None = None) -> QuantLinear:
        """A packed ``QuantLinear`` whose ``dequantize_weight()`` equals ``W_hat`` exactly."""
        grid = self.grid
        qt = QuantizedTensor(self.q, self.scale, self.zero_point, grid.n_bits, grid.group_size, grid.symmetric)
        layer = QuantLinear.from_quantized(qt, bias)
        layer.g_idx = self.g_idx.to(torch.int32).to(layer.g_idx.device)
        return layer


def fit_grid(W_group: torch.Tensor, n_bits: int, symmetric: bool, per_tensor: bool = False,
             scale_dtype: torch.dtype = torch.float16) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(scale, zero_point)`` of the columns ``W_group`` [out, g]: one per row ([out, 1]), or [1, 1].

    The solver calls ``GridSpec.fit``; this spelling, with bare values, is the one notebook 05 uses."""
    return GridSpec(n_bits, "tensor" if per_tensor else "channel", symmetric, scale_dtype).fit(W_group)


def _prepare(W, H, grid, act_order):
    """Dead inputs, permutation and group length shared by the fast and the reference path."""
    if W.dim() != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"Need W [out, in] and H [in, in]; got W {tuple(W.shape)} and H {tuple(H.shape)}.")
    check_group_size(grid.group_size, tuple(W.shape))
    if not torch.isfinite(H).all():
        raise ValueError("H contains NaN or inf: check the calibration activations.")
    W, H = W.clone(), H.clone()
    dead = H.diagonal() == 0  # inputs that were always zero: any weight there is free
    H[dead, dead] = 1
    W[:, dead] = 0
    n_in = W.shape[1]
    perm = torch.arange(n_in, device=W.device)
    if act_order:
        perm = torch.argsort(H.diagonal(), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
    return W, H, perm


def _finish(codes, W_hat, scale, zero_point, perm, grid, damp):
    """Undo the act-order permutation and record each column's group."""
    inv_perm = torch.argsort(perm)
    group_len = grid.group_len(perm.numel())
    g_idx = (torch.arange(perm.numel(), device=perm.device) // group_len)[inv_perm]  # group of original column
    return GPTQResult(_original_columns(codes, inv_perm), scale, zero_point, g_idx.to(torch.int32),
                      _original_columns(W_hat, inv_perm).float(), grid, damp)


def _original_columns(x, inv_perm):
    """``x[:, inv_perm]``, a contiguous [out, in] tensor. If x is the transpose of an [in, out] buffer (as
    from :func:`_solve`), the buffer's rows are gathered and transposed once: much cheaper than a column gather."""
    if x.T.is_contiguous() and not x.is_contiguous():
        return x.T.index_select(0, inv_perm).T.contiguous()
    return x[:, inv_perm]


@torch.no_grad()
def gptq_quantize(
    W: torch.Tensor, H: torch.Tensor, n_bits: int = 4, group_size: int | str = 64, symmetric: bool = False,
    block_size: int = 128, damp_percent: float = 0.01, act_order: bool = False, retry_damping: bool = True,
    scale_dtype: torch.dtype = torch.float16, name: str = "layer", grid_from: str = "updated",
) -> GPTQResult:
    """Quantize ``W`` [out, in] with GPTQ against the Hessian ``H`` [in, in] (float32 unless given float64).

    Rows are independent given H, so several layers that read the same input (q, k, v) can be
    quantized in one call on their stacked weights. Internally W is held transposed, [in, out],
    so that each column is one contiguous row. ``grid_from``: which weights a group's grid is
    fitted on, "updated" (as updated so far) or "block_start" (as the lazy batch began; the
    authors' code).
    """
    check_grid_from(grid_from)
    grid = GridSpec(n_bits, group_size, symmetric, scale_dtype)
    dtype = torch.float64 if W.dtype == torch.float64 else torch.float32
    W, H, perm = _prepare(W.to(dtype), H.to(dtype), grid, act_order)
    U, damp = inverse_hessian_factor(H, damp_percent, retry_damping, name)  # (H + λI)⁻¹ = Uᵀ U
    with _one_thread():
        codes, W_hat, scale, zero_point = _solve(W, U, grid, block_size, grid_from)
    return _finish(codes, W_hat, scale, zero_point, perm, grid, damp)


@contextmanager
def _one_thread():
    """Run the column loop on one thread: its many small ops lose more to thread sync than they gain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


GRID_FROM = ("updated", "block_start")


def check_grid_from(grid_from: str) -> None:
    if grid_from not in GRID_FROM:
        raise ValueError(f"grid_from must be one of {GRID_FROM}, got {grid_from!r}.")


def _solve(W: torch.Tensor, U: torch.Tensor, grid: GridSpec, block_size: int, grid_from: str = "updated"):
    """The column loop of :func:`gptq_quantize` on prepared W [out, in] (float32 or float64) and U.

    Returns ``(codes [out, in], W_hat [out, in], scale [rows, n_groups], zero_point or None)``.

    It runs once per input column (~100k times for a whole model) on rows of a few thousand
    floats, so each tensor op costs more in Python and dispatch than in arithmetic. The loop is
    written for few ops per column: each result is computed in place, straight into its row of
    ``codes``, ``W_hat`` or ``Err1`` (``out=`` and the ``*_`` ops), and the per-column views are
    made once per block (``unbind``). The arithmetic, and its order, is that of the plain form

        q = clamp(round(w / step) + offset),   w_hat = (q - offset) * step,
        err = (w - w_hat) / U_jj,              W1[i+1:] -= U1[i, i+1:] ⊗ err

    so the result is the same to the bit, whatever the dtype, grid or block size. With
    ``grid_from="block_start"`` a group's grid is fitted on a copy of the block taken before its
    first column (and, for a group running past the block, on the later columns without this
    block's pending update), as the authors' code does.
    """
    out_features, n_in = W.shape
    dtype, group_len = W.dtype, grid.group_len(n_in)
    qmin, qmax = grid.code_range()
    Wt = W.T.contiguous()  # [in, out]: row j is column j of W
    codes = torch.empty(n_in, out_features, device=W.device)  # [in, out], float codes until the end
    W_hat = torch.empty(n_in, out_features, dtype=dtype, device=W.device)  # [in, out]
    no_offset = torch.zeros((), device=W.device)  # the symmetric grid's zero point (a tensor op is cheaper than + 0.0)
    scales, zero_points = [], []
    for i1 in range(0, n_in, block_size):
        i2 = min(i1 + block_size, n_in)
        W1 = Wt[i1:i2]  # [count, out]: this block, kept up to date column by column (a view: updated in place)
        Err1 = torch.empty_like(W1)  # [count, out]: scaled errors, row i set at column i; applied to Wt[i2:]
        U1 = U[i1:i2, i1:i2]
        W1_start = W1.clone() if grid_from == "block_start" else None  # [count, out]: the block as it began
        # the views each column works on: rows [out] of W1, codes, W_hat and Err1, row i of U1 as a
        # column [count, 1] (to broadcast against err), and the pivot U_jj (0-dim)
        views = zip(W1.unbind(), codes[i1:i2].unbind(), W_hat[i1:i2].unbind(), Err1.unbind(),
                    U1[:, :, None].unbind(), U1.diagonal().unbind())
        for i, (w, q, w_hat, err, u, pivot) in enumerate(views):
            j = i1 + i
            if j % group_len == 0:  # a group starts: fit its grid on the columns as updated so far
                end = j + group_len
                if W1_start is not None:  # the authors' choice: the weights as the block began
                    group = W1_start[i:min(end, i2) - i1]  # [<= group_len, out]
                    if end > i2:
                        group = torch.cat([group, Wt[i2:end]])  # [group_len, out]
                else:
                    group = W1[i:min(end, i2) - i1]  # [<= group_len, out]
                    if end > i2:  # columns past this block still owe it the pending update
                        group = torch.cat([group, Wt[i2:end] - U[i1:j, i2:end].T @ Err1[:i]])  # [group_len, out]
                scale, zero_point = grid.fit(group.T)  # [rows, 1]
                scales.append(scale)
                zero_points.append(zero_point)
                step = scale[:, 0]  # [rows]
                offset = zero_point[:, 0].float() if zero_point is not None else no_offset
            # round to the grid exactly as quantize_with / dequantize do (float32 arithmetic)
            torch.div(w if dtype == torch.float32 else w.float(), step, out=q).round_().add_(offset).clamp_(qmin, qmax)
            if dtype == torch.float32:
                torch.sub(q, offset, out=w_hat).mul_(step)  # w_hat = (q - offset) * step
            else:  # float64 W: w_hat is computed in float32, then widened
                w_hat.copy_((q - offset) * step)
            torch.sub(w, w_hat, out=err).div_(pivot)  # err = (w - w_hat) / U_jj
            W1[i + 1:].sub_(u[i + 1:] * err)  # rank-1 OBS update of the later columns (column i is done)
        Wt[i2:].sub_(U[i1:i2, i2:].T @ Err1)  # the lazy update of every later column, once per block
    codes = codes.to(torch.int8 if grid.symmetric else torch.uint8).T  # [out, in], a view of the [in, out] codes
    scale = torch.cat(scales, dim=1)  # [rows, n_groups]
    zero_point = None if grid.symmetric else torch.cat(zero_points, dim=1)
    return codes, W_hat.T, scale, zero_point


@torch.no_grad()
def gptq_quantize_reference(
    W: torch.Tensor, H: torch.Tensor, n_bits: int = 4, group_size: int | str = 64, symmetric: bool = False,
    damp_percent: float = 0.01, act_order: bool = False, scale_dtype: torch.dtype = torch.float16,
) -> GPTQResult:
    """Slow reference: float64, an explicit inverse Hessian updated after each column, no blocks."""
    grid = GridSpec(n_bits, group_size, symmetric, scale_dtype)
    W, H, perm = _prepare(W.double(), H.double(), grid, act_order)
    H = H + damp_percent * H.diagonal().mean() * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    H_inv = torch.linalg.inv(H)
    out_features, n_in = W.shape
    group_len = grid.group_len(n_in)
    codes = torch.empty(out_features, n_in, dtype=torch.int8 if symmetric else torch.uint8, device=W.device)
    W_hat = torch.empty_like(W)
    scales, zero_points = [], []
    for j in range(n_in):
        if j % group_len == 0:
            scale, zero_point = grid.fit(W[:, j:j + group_len])
            scales.append(scale)
            zero_points.append(zero_point)
        q = quantize_with(W[:, j:j + 1], scale, zero_point, n_bits, symmetric)
        codes[:, j:j + 1], W_hat[:, j:j + 1] = q, dequantize(q, scale, zero_point).double()
        err = (W[:, j] - W_hat[:, j]) / H_inv[j, j]  # [out]
        W[:, j:] -= err[:, None] * H_inv[j, j:][None, :]
        H_inv = H_inv - H_inv[:, j:j + 1] @ H_inv[j:j + 1, :] / H_inv[j, j]  # eliminate input j
    scale = torch.cat(scales, dim=1)  # [rows, n_groups]
    zero_point = None if symmetric else torch.cat(zero_points, dim=1)
    return _finish(codes, W_hat, scale, zero_point, perm, grid, damp_percent)


# ---------------------------------------------------------------- the whole model


@dataclass(frozen=True)
class GPTQConfig(GridConfig):
    """Settings of GPTQ.

    n_bits, group_size, symmetric, skip: the grid and the layers kept, as in ``methods.GridConfig``
    block_size:      columns per lazy batch (128 in the paper)
    damp_percent:    λ = damp_percent · mean(diag H) added to diag H
    act_order:       process columns by decreasing diag(H) (g_idx keeps the groups right)
    true_sequential: inside a block, collect each stage's H after the stages before it are
                     quantized (q/k/v, then o, then gate/up, then down); one extra block pass per stage
    batch_size:      calibration sequences per forward chunk
    grid_from:       fit each group's grid on the weights "updated" so far (the default) or as they
                     stood at the "block_start" (the authors' code); see gptq_quantize
    retry_damping:   on a singular H, retry with 10x damping (with a warning) instead of failing
    """

    block_size: int = 128
    damp_percent: float = 0.01
    act_order: bool = False
    true_sequential: bool = False
    batch_size: int = 8
    retry_damping: bool = True
    grid_from: str = "updated"
    needs_calib = True  # a class constant, not a setting

    def __post_init__(self):
        super().__post_init__()
        for field in ("block_size", "batch_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive int, got {value!r}.")
        if not isinstance(self.damp_percent, (int, float)) or not 0 <= self.damp_percent < 1:
            raise ValueError(f"damp_percent must be in [0, 1) (0.01 is usual), got {self.damp_percent!r}.")
        for field in ("act_order", "true_sequential", "retry_damping"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field} must be True or False, got {getattr(self, field)!r}.")
        check_grid_from(self.grid_from)


def _quantize_stage(block, names, H, config, on_layer, results):
    """GPTQ the linears ``names`` ({qualified: local}) of one stage against their shared H: stacked
    into one weight, one column loop."""
    if not names:
        return
    linears = [block.get_submodule(local) for local in names.values()]
    qualified = list(names)
    groups = [[i] for i in range(len(names))] if config.group_size == "tensor" else [list(range(len(names)))]
    for members in groups:  # per-tensor grids span one layer, so those are not stacked
        W = torch.cat([linears[i].weight.detach() for i in members])  # [sum of out, in]
        stacked = gptq_quantize(W, H, config.n_bits, config.group_size, config.symmetric, config.block_size,
                                config.damp_percent, config.act_order, config.retry_damping,
                                name="+".join(qualified[i] for i in members), grid_from=config.grid_from)
        start = 0
        for i in members:
            linear, end = linears[i], start + linears[i].out_features
            result = stacked.rows(start, end)
            start = end
            if on_layer is not None:
                on_layer(qualified[i], linear.weight.detach(), H, result)
            linear.weight.data.copy_(result.W_hat)  # later stages and blocks see the quantized layer
            results[names[qualified[i]]] = result


@register(GPTQConfig)
def _apply(model: nn.Module, config: GPTQConfig, *, calib, select: Selection, progress: bool,
           on_layer=None) -> None:
    """GPTQ every selected linear, block by block (the preamble ran in ``methods.quantize``)."""
    calib_ids = check_calibration(calib)
    wiring = wiring_for(model)
    check_block_targets(model, wiring, select, "GPTQ")
    stages = list(wiring.sequential)
    for index, block, inputs in sequential_blocks(model, calib_ids, config.batch_size, progress,
                                                  f"GPTQ {config.n_bits}-bit"):
        prefix = f"{wiring.blocks}.{index}."
        passes = [[stage] for stage in stages] if config.true_sequential else [stages]
        results: dict[str, GPTQResult] = {}
        for stages_in_pass in passes:
            # one Hessian per stage: every linear of a stage reads the same input
            hooked = {stage: block.get_submodule(stage[0]) for stage in stages_in_pass}
            accumulators = {stage: HessianAccumulator(m.in_features, m.weight.device) for stage, m in hooked.items()}
            with record_inputs(hooked, lambda stage, x: accumulators[stage].add(x)):
                run_block(block, inputs)
            for stage in stages_in_pass:
                names = {prefix + local: local for local in stage if select(prefix + local)}
                _quantize_stage(block, names, accumulators[stage].H, config, on_layer, results)
        for local, result in results.items():
            block.set_submodule(local, result.to_quant_linear(block.get_submodule(local).bias))
    calibration.record(model, calib)  # what calibrated it, saved with the model


def quantize_model(model: nn.Module, config: GPTQConfig | None = None, *, calib: torch.Tensor | None = None,
                   progress: bool = True, on_layer=None, only=None) -> nn.Module:
    """GPTQ every linear inside the decoder blocks (not in ``config.skip``; in ``only`` if given),
    block by block, in place; return ``model``.

    calib:    token ids [n_samples, seq_len] (``data.calibration_batches``) or a
              ``calibration.CalibrationSet``; required. Recorded as ``model.quant_calibration``
    on_layer: optional ``on_layer(name, W, H, result)`` called after each layer, with the
              original weight W, its Hessian H and the :class:`GPTQResult`
    """
    return quantize_as(GPTQConfig, model, config, calib=calib, progress=progress, on_layer=on_layer, only=only)
