"""Run the course's notebooks top to bottom at a budget and record how long each takes.

    python scripts/time_notebooks.py --budget full --json benchmarks/results/run-times-full-DATE.json
    python scripts/time_notebooks.py --budget ci 05_gptq 08_calibration      # some notebooks only
    python scripts/time_notebooks.py --keep executed/                         # keep the executed copies

Each solution notebook (``solutions/NN_name/NN_name.ipynb``) is copied to a scratch folder and executed
there with ``jupyter nbconvert --execute`` (so nothing in the repository changes, and a learner's
notebook is never touched), with ``QUANT_COURSE_BUDGET`` set and Jupyter's folders inside the scratch
folder. For each notebook it records the wall time, the cells that took longer than ``--slow`` seconds
(index, first line, seconds: the cells a first cell should warn about), and the line that the notebook's
last cell prints from ``course_lib.run_log`` (its quantizations and perplexity evaluations).

Times depend on the machine and on what else runs on it: the record keeps the CPU, its core count and
the load average before and after each notebook. Quote a time only from a run whose load stayed near
zero (an idle machine).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import nbformat

from course_lib.run_log import cpu_name, portable, save_record

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"


def cell_seconds(cell) -> float | None:
    """Wall seconds of one executed cell, from the timestamps nbclient records in its metadata."""
    ex = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in ex or "shell.execute_reply" not in ex:
        return None
    start, end = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def run_log_line(nb) -> str | None:
    """The ``run_log.summary()`` line the notebook printed, if it did."""
    for cell in reversed(nb.cells):
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("This run:"):
                    return line
    return None


def time_one(name: str, budget: str, scratch: Path, slow: float, keep: Path | None = None) -> dict:
    source = SOLUTIONS / name / f"{name}.ipynb"
    if not source.exists():
        raise SystemExit(f"no notebook {source.relative_to(ROOT)}; the names are the folders of solutions/")
    work = scratch / name
    shutil.copytree(SOLUTIONS / name, work)  # data files next to the notebook come along
    env = dict(os.environ, QUANT_COURSE_BUDGET=budget, MPLBACKEND="Agg",
               **{var: str(scratch / "jupyter" / var.lower()) for var in
                  ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")})
    load_before = os.getloadavg()[0]
    clock = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                             "--inplace", "--ExecutePreprocessor.timeout=7200", work / source.name],
                            env=env, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - clock
    nb = nbformat.read(work / source.name, 4)
    if keep is not None:  # the executed copy, outputs and all, to read what the run printed
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / source.name, keep / f"{name}-{budget}.ipynb")
    cells = [(i, cell_seconds(c), c.source.splitlines()[0] if c.source else "") for i, c in enumerate(nb.cells)
             if c.cell_type == "code"]
    return {"notebook": name, "ok": result.returncode == 0, "seconds": round(seconds, 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "slow_cells": [{"cell": i, "seconds": round(s, 1), "first_line": first[:80]}
                           for i, s, first in cells if s is not None and s >= slow],
            "run_log": run_log_line(nb), "error": "" if result.returncode == 0 else result.stderr[-1500:]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="folder names under solutions/ (default: all)")
    parser.add_argument("--budget", default="full", choices=["full", "ci"])
    parser.add_argument("--slow", type=float, default=60.0, help="list cells over this many seconds (default 60)")
    parser.add_argument("--json", help="write the record here")
    parser.add_argument("--keep", type=Path, help="copy each executed notebook into this folder")
    args = parser.parse_args(argv)
    names = args.notebooks or sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").exists())
    argv = argv if argv is not None else sys.argv[1:]
    record = {"command": "python scripts/time_notebooks.py " + " ".join(portable(list(argv))),
              "date": str(date.today()), "machine": cpu_name(), "cores": os.cpu_count(),
              "python": platform.python_version(), "budget": args.budget, "notebooks": []}
    print(f"# {record['machine']}, {record['cores']} cores, budget {args.budget}, {record['date']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="time-notebooks-") as scratch:
        for name in names:
            row = time_one(name, args.budget, Path(scratch), args.slow, args.keep)
            record["notebooks"].append(row)
            minutes, seconds = divmod(round(row["seconds"]), 60)
            print(f"{name:<20} {'ok' if row['ok'] else 'FAILED':<7}{minutes:>3} min {seconds:>2} s   load "
                  f"{row['load_before']:.1f} -> {row['load_after']:.1f}   {row['run_log'] or ''}", flush=True)
            for cell in row["slow_cells"]:
                print(f"    cell {cell['cell']:>3}: {cell['seconds']:>6.0f} s  {cell['first_line']}")
            if not row["ok"]:
                print(row["error"])
            save_record(args.json, record)  # after every notebook
    if not all(row["ok"] for row in record["notebooks"]):
        raise SystemExit("some notebooks failed (above)")


if __name__ == "__main__":
    main()
