"""How much compute a run may spend: the `QUANT_COURSE_BUDGET` knob.

Learners get ``full`` by default. The test suite and CI set ``QUANT_COURSE_BUDGET=ci``,
which shrinks every token count and calibration size so that twelve notebooks run in
minutes, while still exercising the same code on the same real model.

Every notebook and driver reads its sizes from :func:`get_budget` rather than hard-coding
them, so one environment variable scales the whole course.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "QUANT_COURSE_BUDGET"


@dataclass(frozen=True)
class Budget:
    """Sizes that scale with the budget.

    eval_tokens:      tokens of the evaluation split scored by the pinned perplexity.
    calib_samples:    calibration sequences (GPTQ, AWQ, SmoothQuant, ...).
    calib_seq_len:    tokens per calibration sequence.
    """

    name: str
    eval_tokens: int
    calib_samples: int
    calib_seq_len: int


BUDGETS = {
    "full": Budget("full", eval_tokens=8192, calib_samples=128, calib_seq_len=512),
    "ci": Budget("ci", eval_tokens=2048, calib_samples=16, calib_seq_len=256),
}


def get_budget(name: str | None = None) -> Budget:
    """Return the budget named by ``name``, or by ``$QUANT_COURSE_BUDGET`` (default ``full``)."""
    chosen = name if name is not None else os.environ.get(ENV_VAR, "full")
    key = chosen.strip().lower()
    if key not in BUDGETS:
        raise ValueError(
            f"Unknown budget {chosen!r} (from {'the argument' if name is not None else '$' + ENV_VAR}). "
            f"Use one of: {', '.join(BUDGETS)}; for example `export {ENV_VAR}=full`."
        )
    return BUDGETS[key]
