"""Perplexity under one pinned protocol, so every table in every notebook compares.

The protocol (``PROTOCOL`` below, printed by ``quant-course eval``):

* text:    the ``eval`` split of a corpus (wiki by default), documents joined by a blank
           line, tokenized without special tokens (``course_lib.data.token_ids``);
* budget:  the first ``n_tokens`` tokens of that stream; ``n_tokens`` defaults to the
           budget's ``eval_tokens`` (8,192 at ``full``, 2,048 at ``ci``);
* windows: non-overlapping windows of ``window`` = 512 tokens, stride 512; a trailing
           partial window is dropped; every window starts with a fresh context;
* scoring: each token after the first in a window is predicted from the ones before it
           (511 predictions per window); perplexity = exp(sum of NLL / number of predictions),
           NLL summed in float64;
* model:   ``model.eval()`` under ``torch.no_grad()``, in the model's own dtype (fp32 for
           the tables; the course loads fp32 by default), batch size 1.

    ppl = exp( (1/N) * sum_i -log p(x_i | x_<i within its window) )
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import run_log
from .budget import get_budget
from .calibration import warn_if_overlapped
from .data import token_ids

WINDOW = 512
PROTOCOL = {
    "split": "eval",
    "tokens": "first n_tokens of the split (budget eval_tokens: full 8192, ci 2048)",
    "window": WINDOW,
    "stride": WINDOW,
    "predictions_per_window": WINDOW - 1,
    "dtype": "the model's (fp32 in every table)",
    "mode": "model.eval(), torch.no_grad(), batch size 1",
}


def describe_protocol() -> str:
    """One line per setting of the pinned protocol."""
    return "\n".join(f"{k:>22}: {v}" for k, v in PROTOCOL.items())


def perplexity_from_nll(nll_sum: float, n_predictions: int) -> float:
    """``exp(nll_sum / n_predictions)``: the perplexity of summed negative log-likelihoods, as a Python float."""
    if n_predictions <= 0:
        raise ValueError(f"n_predictions must be positive, got {n_predictions}.")
    return math.exp(float(nll_sum) / n_predictions)


def nll_of_window(model, input_ids: torch.Tensor) -> tuple[float, int]:
    """Summed negative log-likelihood of ``input_ids[1:]`` given its prefix, and its count.

    input_ids: [1, T] token ids of one window.
    """
    logits = model(input_ids).logits  # [1, T, vocab]
    # position t predicts token t+1
    nll = F.cross_entropy(logits[0, :-1].float(), input_ids[0, 1:], reduction="sum")
    return float(nll.double()), input_ids.shape[1] - 1


def _eval_windows(tokenizer, corpus: str, n_tokens: int | None, window: int) -> torch.Tensor:
    """The protocol's windows of ``corpus``'s eval split: [n_windows, window] token ids, arguments checked."""
    if n_tokens is None:
        n_tokens = get_budget().eval_tokens
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an int >= 2 tokens, got {window!r}; the protocol uses {WINDOW}.")
    if not isinstance(n_tokens, int) or n_tokens < window:
        raise ValueError(
            f"n_tokens must be an int of at least one window ({window}), got {n_tokens!r}; "
            f"leave it as None to use the budget's eval_tokens."
        )
    n_windows = n_tokens // window
    return token_ids(tokenizer, corpus, "eval", max_tokens=n_windows * window).view(n_windows, window)


def perplexity(
    model,
    tokenizer,
    corpus: str = "wiki",
    n_tokens: int | None = None,
    window: int = WINDOW,
    progress: bool = True,
) -> float:
    """Perplexity of ``model`` on the eval split of ``corpus`` under the pinned protocol.

    Keep ``window`` at its default for any number you compare with another table.
    """
    windows = _eval_windows(tokenizer, corpus, n_tokens, window)  # [n_windows, window]
    warn_if_overlapped(model, corpus)  # calibrated on this split's text: the number below is optimistic
    device = next(model.parameters()).device

    was_training = model.training
    model.eval()
    total_nll, total_count = 0.0, 0
    try:
        with torch.no_grad():
            for row in tqdm(windows, desc=f"perplexity ({corpus})", disable=not progress, leave=False):
                nll, count = nll_of_window(model, row.unsqueeze(0).to(device))
                total_nll += nll
                total_count += count
    finally:
        model.train(was_training)
    run_log.record("perplexity evaluation", windows.numel())
    return perplexity_from_nll(total_nll, total_count)


def token_nll(model, tokenizer, corpus: str = "wiki", n_tokens: int | None = None, window: int = WINDOW,
              progress: bool = False) -> torch.Tensor:
    """[n_windows, window - 1] float64: the NLL of every prediction of :func:`perplexity`'s protocol.

    ``exp(token_nll(...).mean())`` is ``perplexity(...)`` up to float rounding (there each window's NLL is
    summed in float32 first). Kept per prediction, it can be cut into blocks and resampled
    (``calibration.block_sums``, ``calibration.bootstrap_perplexities``) for an interval.
    """
    windows = _eval_windows(tokenizer, corpus, n_tokens, window)  # [n_windows, window]
    warn_if_overlapped(model, corpus)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad():
            for row in tqdm(windows, desc=f"token NLL ({corpus})", disable=not progress, leave=False):
                logits = model(row[None].to(device)).logits  # [1, window, vocab]
                rows.append(F.cross_entropy(logits[0, :-1].float(), row[1:].to(device), reduction="none")
                            .double().cpu())  # [window - 1]
    finally:
        model.train(was_training)
    run_log.record("perplexity evaluation", windows.numel())
    return torch.stack(rows)  # [n_windows, window - 1]
