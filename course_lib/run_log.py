"""What a run cost: counts of its expensive steps and the time since the library was first used.

``evaluate.perplexity`` records each evaluation (and its tokens), ``methods.quantize`` and
``swap.map_linear_weights`` each quantization of a model. A notebook's last cell prints
:func:`summary`, so the counts a README or a first cell quotes are printed by the run itself.
"""
import time
from collections import Counter

_started = time.perf_counter()
_counts: Counter = Counter()
_tokens: Counter = Counter()


def record(step: str, tokens: int = 0) -> None:
    """Count one ``step`` (e.g. "perplexity evaluation"), with the tokens it read if any."""
    _counts[step] += 1
    _tokens[step] += tokens


def counts() -> dict[str, int]:
    """How many times each step ran since the library was imported (or :func:`reset`)."""
    return dict(_counts)


def reset() -> None:
    """Start counting and timing afresh."""
    global _started
    _started = time.perf_counter()
    _counts.clear()
    _tokens.clear()


def elapsed() -> float:
    """Seconds since the library was imported (or :func:`reset`)."""
    return time.perf_counter() - _started


def summary() -> str:
    """One line: each step's count (and tokens), then the time since the library was imported."""
    parts = [f"{n} {step}{'s' if n != 1 else ''}" + (f" ({_tokens[step]:,} tokens)" if _tokens[step] else "")
             for step, n in sorted(_counts.items())]
    minutes, seconds = divmod(round(elapsed()), 60)
    return (f"This run: {', '.join(parts) or 'no counted steps'}; "
            f"{minutes} min {seconds} s since course_lib was first imported.")
