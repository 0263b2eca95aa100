"""Calibration sets: what GPTQ, AWQ and SmoothQuant see, built from named sources and recorded.

A calibration set is ``n_samples`` windows of ``seq_len`` token ids. Its windows come from
one source or from a weighted mix of sources:

- a corpus of :mod:`course_lib.data` (``"wiki"``, ``"code"``, ``"sql"``): windows of its
  ``"calib"`` split only (``data.calibration_batches``);
- ``"random"``: token ids drawn uniformly from the vocabulary, a control that carries no text.

:func:`build` returns a :class:`CalibrationSet`: the ids with the source of every window and
the number of windows that share text with each corpus's eval split (:func:`eval_overlap`).
The quantizers accept it wherever they accept a tensor and record its :meth:`~CalibrationSet.recipe`
on the model (``model.quant_calibration``); ``quant_io.save_quantized`` stores that record in
the file, and ``evaluate.perplexity`` warns when it scores a corpus the calibration overlapped.

Overlap is measured in token n-grams: a window overlaps an eval split when one of its runs of
``OVERLAP_NGRAM`` tokens also occurs in that split's token stream. Shorter runs are shared by
ordinary boilerplate (licence headers, ``CREATE FUNCTION ... LANGUAGE C STRICT``), not by leaked text.
"""
from __future__ import annotations

import copy
import math
import statistics
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from . import data

RANDOM = "random"
OVERLAP_NGRAM = 32  # tokens


def check_weights(weights) -> dict[str, float]:
    """``weights`` as {source: weight > 0}; a single source name means {name: 1}."""
    if isinstance(weights, str):
        weights = {weights: 1.0}
    sources = data.CORPORA + (RANDOM,)
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"weights must be a source name or a non-empty dict {{source: weight}}, got {weights!r}; "
                         f"sources: {', '.join(sources)}.")
    for source, weight in weights.items():
        if source not in sources:
            raise ValueError(f"unknown calibration source {source!r}; use one of {', '.join(sources)}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"the weight of {source!r} must be a positive number, got {weight!r} "
                             "(leave a source out instead of giving it 0).")
    return {source: float(weight) for source, weight in weights.items()}


def mix_counts(weights, n_samples: int) -> dict[str, int]:
    """Windows per source: ``n_samples · weight / Σ weights``, rounded by largest remainder.

    The counts sum to ``n_samples``; ties in the remainder go to the source listed first.
    Every source must get at least one window, or a ValueError says how many samples it needs.
    """
    weights = check_weights(weights)
    data._check_int("n_samples", n_samples, 1)
    total = sum(weights.values())
    exact = {source: n_samples * weight / total for source, weight in weights.items()}
    counts = {source: math.floor(share) for source, share in exact.items()}
    by_remainder = sorted(weights, key=lambda s: exact[s] - counts[s], reverse=True)  # stable: listed order on ties
    for source in by_remainder[:n_samples - sum(counts.values())]:
        counts[source] += 1
    empty = [source for source, count in counts.items() if count == 0]
    if empty:
        raise ValueError(f"with n_samples={n_samples}, {empty} get no window; raise n_samples or their weights.")
    return counts


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration windows and where they came from.

    input_ids:    LongTensor [n_samples, seq_len]
    sources:      the source of each window (a corpus, "random", or the label of custom ids)
    seed:         the seed :func:`build` used (None for custom ids)
    eval_overlap: {corpus: windows sharing an OVERLAP_NGRAM-token run with its eval split}
    """

    input_ids: torch.Tensor
    sources: tuple[str, ...]
    seed: int | None = None
    eval_overlap: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.input_ids, torch.Tensor) or self.input_ids.dim() != 2 \
                or self.input_ids.dtype != torch.long:
            raise ValueError("input_ids must be a LongTensor [n_samples, seq_len].")
        if len(self.sources) != self.input_ids.shape[0]:
            raise ValueError(f"{len(self.sources)} sources for {self.input_ids.shape[0]} windows.")

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.input_ids.shape[1]

    def counts(self) -> dict[str, int]:
        """Windows per source, in order of first appearance."""
        counts: dict[str, int] = {}
        for source in self.sources:
            counts[source] = counts.get(source, 0) + 1
        return counts

    def recipe(self) -> dict:
        """What calibrated a model, as JSON-able data (stored with a saved quantized model)."""
        return {"windows": self.counts(), "seq_len": self.seq_len, "seed": self.seed,
                "eval_overlap": dict(self.eval_overlap)}


def mismatch_ratio(increase: dict, calib: str, eval_domain: str) -> float:
    """How much more calibrating on ``calib`` costs on ``eval_domain`` than calibrating in domain:
    ``Δ(calib, eval_domain) / Δ(eval_domain, eval_domain)``, from ``increase`` {(calibration source,
    eval domain): perplexity increase over the reference model}. An off-domain Δ keeps its sign (a
    calibration that beats the reference there gives a negative ratio); the in-domain Δ must be
    positive, or the ratio means nothing (ValueError, as for a missing pair)."""
    for key in ((calib, eval_domain), (eval_domain, eval_domain)):
        if key not in increase:
            raise ValueError(f"no increase measured for calibration {key[0]!r} evaluated on {key[1]!r}; "
                             "quantize and evaluate that pair first.")
    in_domain = increase[(eval_domain, eval_domain)]
    if not in_domain > 0:
        raise ValueError(f"the in-domain increase Δ({eval_domain!r}, {eval_domain!r}) = {in_domain} is not positive: "
                         "in-domain calibration lost nothing, so a ratio to it means nothing.")
    return float(increase[(calib, eval_domain)]) / in_domain


def random_windows(vocab_size: int, n_samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """[n_samples, seq_len] token ids drawn uniformly from ``[0, vocab_size)``: text-free calibration."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (n_samples, seq_len), generator=generator)


def build(tokenizer, weights="wiki", n_samples: int = 128, seq_len: int = 512, seed: int = 0,
          check_overlap: bool = False) -> CalibrationSet:
    """A calibration set with ``mix_counts(weights, n_samples)`` windows of each source, shuffled.

    Corpus windows come from ``data.calibration_batches(tokenizer, corpus, count, seq_len, seed)``,
    so they never come from an eval split. The windows are then put in a random order fixed
    by ``seed`` (a quantizer that stops early, or a smaller batch, still sees every source).
    check_overlap: also count windows that share text with each eval split (slower: it
    tokenizes every eval split once per tokenizer).
    """
    counts = mix_counts(weights, n_samples)
    parts, sources = [], []
    for source, count in counts.items():
        if source == RANDOM:
            parts.append(random_windows(len(tokenizer), count, seq_len, seed))
        else:
            parts.append(data.calibration_batches(tokenizer, source, count, seq_len, seed))
        sources += [source] * count
    ids = torch.cat(parts)  # [n_samples, seq_len]
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))
    overlap = eval_overlap(ids[order], tokenizer) if check_overlap else {}
    return CalibrationSet(ids[order], tuple(sources[i] for i in order.tolist()), seed, overlap)


def from_token_ids(input_ids: torch.Tensor, tokenizer, label: str = "custom") -> CalibrationSet:
    """Wrap your own windows [n_samples, seq_len]; warn if any shares text with an eval split."""
    overlap = eval_overlap(input_ids, tokenizer)
    calib = CalibrationSet(input_ids, (label,) * input_ids.shape[0], None, overlap)
    leaked = {corpus: n for corpus, n in overlap.items() if n}
    if leaked:
        warnings.warn(f"{_describe(leaked, len(calib))} of these calibration windows share text with the eval split "
                      f"(runs of {OVERLAP_NGRAM} tokens): perplexity on that split would be optimistic. Build windows "
                      "from the 'calib' split (data.calibration_batches or calibration.build).", stacklevel=2)
    return calib


def _describe(leaked: dict[str, int], n: int) -> str:
    return ", ".join(f"{count} of {n} windows ({corpus!r})" for corpus, count in leaked.items())


# ---------------------------------------------------------------- overlap with the eval splits


def ngrams(ids: torch.Tensor, n: int = OVERLAP_NGRAM) -> set[bytes]:
    """Every run of ``n`` consecutive ids of a 1-D tensor, as bytes (a set member)."""
    raw = ids.to(torch.int32).contiguous().numpy().tobytes()  # 4 bytes per token
    return {raw[4 * i:4 * (i + n)] for i in range(ids.numel() - n + 1)}


@lru_cache(maxsize=8)
def _eval_ngrams(tokenizer, corpus: str, n: int) -> frozenset[bytes]:
    return frozenset(ngrams(data.token_ids(tokenizer, corpus, "eval"), n))


def overlapping_windows(input_ids: torch.Tensor, eval_grams: set[bytes] | frozenset[bytes],
                        n: int = OVERLAP_NGRAM) -> list[int]:
    """Indices of the windows [n_samples, seq_len] with at least one n-gram in ``eval_grams``."""
    return [i for i, window in enumerate(input_ids) if not ngrams(window, n).isdisjoint(eval_grams)]


def eval_overlap(input_ids: torch.Tensor, tokenizer, corpora=None, n: int = OVERLAP_NGRAM) -> dict[str, int]:
    """{corpus: number of windows sharing an ``n``-token run with its eval split}, for every available corpus."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError("input_ids must be a tensor [n_samples, seq_len] of token ids.")
    if input_ids.shape[1] < n:
        return {corpus: 0 for corpus in (corpora or data.available_corpora())}  # no window holds a whole run
    return {corpus: len(overlapping_windows(input_ids, _eval_ngrams(tokenizer, corpus, n), n))
            for corpus in (corpora or data.available_corpora())}


def warn_if_overlapped(model, corpus: str) -> None:
    """Warn when ``model`` was calibrated on windows that share text with ``corpus``'s eval split."""
    record = getattr(model, "quant_calibration", None) or {}
    count = record.get("eval_overlap", {}).get(corpus, 0)
    if count:
        n = sum(record.get("windows", {}).values())
        warnings.warn(f"this model was calibrated on {count} of {n} windows that share text with the {corpus!r} eval "
                      "split: its perplexity there is optimistic (calibration.eval_overlap says which).", stacklevel=3)


def record(model, calib) -> None:
    """Remember on ``model`` what calibrated it (``model.quant_calibration``, saved by quant_io)."""
    if isinstance(calib, CalibrationSet):
        model.quant_calibration = calib.recipe()
    else:
        model.quant_calibration = {"windows": {"unrecorded": int(calib.shape[0])}, "seq_len": int(calib.shape[1]),
                                   "seed": None, "eval_overlap": {}}


def locate(window: torch.Tensor, stream: torch.Tensor) -> int:
    """Start of the first occurrence of ``window`` [seq_len] as a contiguous slice of ``stream`` [n], or -1."""
    haystack = stream.to(torch.int32).contiguous().numpy().tobytes()
    needle = window.to(torch.int32).contiguous().numpy().tobytes()
    start = haystack.find(needle)
    while start > 0 and start % 4:  # a match must begin on a token boundary (4 bytes per token)
        start = haystack.find(needle, start + 1)
    return start // 4 if start >= 0 else -1


# ---------------------------------------------------------------- uncertainty: a paired bootstrap over eval blocks


def block_sums(token_nll: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL and prediction count of each run of ``block`` consecutive predictions of a window.

    token_nll: [n_windows, n_predictions] the NLL of every prediction of each evaluation window
    block:     predictions per block; a window is cut into ceil(n_predictions / block) blocks, the last
               one shorter when block does not divide n_predictions; no block spans two windows
    returns    (sums, counts), each [n_windows · ceil(n_predictions / block)], window by window
    """
    if not isinstance(token_nll, torch.Tensor) or token_nll.dim() != 2 or token_nll.shape[1] == 0:
        raise ValueError("token_nll must be a tensor [n_windows, n_predictions] with at least one prediction.")
    data._check_int("block", block, 1)
    n_windows, n_predictions = token_nll.shape
    n_blocks = -(-n_predictions // block)  # ceil
    padded = torch.zeros(n_windows, n_blocks * block, dtype=torch.float64)  # [n_windows, n_blocks · block]
    padded[:, :n_predictions] = token_nll.double()
    sums = padded.view(n_windows, n_blocks, block).sum(-1).reshape(-1)  # [n_windows · n_blocks]
    counts = torch.full((n_blocks,), block, dtype=torch.float64)  # [n_blocks]
    counts[-1] = n_predictions - (n_blocks - 1) * block
    return sums, counts.repeat(n_windows)  # counts: [n_windows · n_blocks]


def bootstrap_perplexities(block_nll: torch.Tensor, block_count: torch.Tensor, n_resamples: int = 2000,
                           seed: int = 0) -> torch.Tensor:
    """Perplexities of several models on the same resampled evaluation blocks: a paired bootstrap.

    block_nll:   [n_models, n_blocks] summed NLL of each block for each model, every model scored on the
                 same text (``block_sums`` of each model's token NLLs)
    block_count: [n_blocks] predictions in each block
    Each resample draws n_blocks blocks with replacement (a generator seeded with ``seed``), the same
    draw for every model, so the difference between two models keeps its pairing: the text that is
    hard for one is hard for the other. Returns exp(Σ nll / Σ count) per model and resample,
    [n_models, n_resamples].
    """
    block_nll = torch.as_tensor(block_nll, dtype=torch.float64)
    block_count = torch.as_tensor(block_count, dtype=torch.float64)
    if block_nll.dim() != 2 or block_count.dim() != 1 or block_nll.shape[1] != block_count.shape[0] \
            or block_count.shape[0] == 0:
        raise ValueError(f"block_nll must be [n_models, n_blocks] and block_count [n_blocks], got "
                         f"{tuple(block_nll.shape)} and {tuple(block_count.shape)}.")
    data._check_int("n_resamples", n_resamples, 1)
    n_blocks = block_count.shape[0]
    draws = torch.randint(0, n_blocks, (n_resamples, n_blocks), generator=torch.Generator().manual_seed(seed))
    nll = block_nll[:, draws].sum(-1)  # [n_models, n_resamples]
    count = block_count[draws].sum(-1)  # [n_resamples]
    return torch.exp(nll / count)


def percentile_interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, share undefined): the central ``level`` interval of the finite values of a bootstrap.

    values: [n_resamples]; NaN marks a resample where the statistic is undefined (a ratio whose
    denominator was not positive there). The interval is taken over the others; the share of
    undefined resamples is returned so that the reader sees how often the statistic meant nothing.
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}.")
    finite = values[torch.isfinite(values)]
    undefined = 1 - finite.numel() / max(values.numel(), 1)
    if finite.numel() == 0:
        return math.nan, math.nan, undefined
    tail = (1 - level) / 2
    low, high = torch.quantile(finite, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return low, high, undefined


def ratio_draws(off_domain: torch.Tensor, in_domain: torch.Tensor) -> torch.Tensor:
    """Resampled mismatch ratios Δ_off / Δ_in, NaN where the resampled in-domain Δ is not positive
    (``mismatch_ratio`` refuses those); both [n_resamples]."""
    off_domain = torch.as_tensor(off_domain, dtype=torch.float64)
    in_domain = torch.as_tensor(in_domain, dtype=torch.float64)
    return torch.where(in_domain > 0, off_domain / in_domain.clamp_min(1e-300), torch.nan)


# two-sided 95% Student t quantiles by degrees of freedom; between entries the next lower one (wider)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean of repeated runs (calibration seeds) and its 95% t-interval.

    With one value the interval is that value: one run says nothing about the spread.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("t_interval needs at least one value.")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    df = len(values) - 1
    half = (T95.get(df) or T95[max(k for k in T95 if k <= df)]) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def geometric_t_interval(ratios: list[float]) -> tuple[float, float, float]:
    """(geometric mean, low, high) of positive ratios (one per seed): :func:`t_interval` on their logs."""
    if any(r <= 0 for r in ratios):
        raise ValueError(f"ratios must be positive, got {ratios}.")
    return tuple(math.exp(x) for x in t_interval([math.log(r) for r in ratios]))
