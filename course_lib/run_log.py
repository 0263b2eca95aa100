"""What a run cost: counts of its expensive steps and the time since the library was first used.

Also what a recorded run (``benchmarks/``, ``scripts/time_notebooks.py``) needs for its file:
:func:`new_record`, the header of its file (command, date, machine, arguments), with
:func:`cpu_name` and :func:`portable` (the command without the folders of the machine), and
:func:`save_record`, which writes the file.

``evaluate.perplexity`` records each evaluation (and its tokens), ``methods.quantize`` and
``swap.map_linear_weights`` each quantization of a model. A notebook's last cell prints
:func:`summary`, so the counts a README or a first cell quotes are printed by the run itself.
"""
import json
import os
import platform
import time
from collections import Counter
from datetime import date

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


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows of it."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def portable(value):
    """A recorded argument without the machine's folders: an absolute path by its file name, lists item by item."""
    if isinstance(value, list):
        return [portable(v) for v in value]
    return os.path.basename(value) if isinstance(value, str) and os.path.isabs(value) else value


def save_record(path, record: dict) -> None:
    """Write ``record`` to ``path`` as indented JSON; nothing when ``path`` is None. A script calls it after
    every run it measures, so that a process stopped early (a time limit) still leaves what it measured."""
    if path:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")


def new_record(script: str, argv: list, args, device: str = "cpu", **fields) -> dict:
    """The header a recorded run's file starts with: ``python script argv`` without the machine's folders,
    the date, CPU, GPU (when ``device`` is CUDA), torch version, torch threads and the parsed ``args``
    (an ``argparse.Namespace``); then ``fields``."""
    import torch  # here, so that the counting above stays importable without it

    return {"command": f"python {script} " + " ".join(str(a) for a in portable(list(argv))),
            "date": str(date.today()), "machine": cpu_name(),
            "gpu": torch.cuda.get_device_name() if str(device).startswith("cuda") else None,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "args": {k: portable(v) for k, v in vars(args).items()}, **fields}
