"""The ``quant-course`` command.

    quant-course prepare     build the model cache, check the corpora, fill the workspace
    quant-course eval        print the pinned protocol and the baseline perplexity
    quant-course workspace   copy released notebooks the learner does not have yet
    quant-course lab         prepare, then open JupyterLab on the workspace
    quant-course check NB    grade your copy of a notebook with the hidden tests (never changes it)
    quant-course release     regenerate notebooks/ from solutions/ (instructors)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

WORKSPACE_ENV_VAR = "QUANT_COURSE_WORKSPACE"


def workspace_dir(course_root: Path) -> Path:
    """Where the learner's own copies live: ``$QUANT_COURSE_WORKSPACE`` or ``workspace/``."""
    return Path(os.environ.get(WORKSPACE_ENV_VAR) or course_root / "workspace").expanduser().resolve()


def fill_workspace(course_root: Path, workspace: Path) -> list[Path]:
    """Copy each released notebook folder's files into the workspace, never overwriting.

    A learner's edited notebook is kept as it is; a notebook that is new in the release
    (after a ``git pull``) is added next to it. Returns the files copied.
    """
    from .grading import RELEASE_DIR

    copied = []
    for src in sorted((course_root / RELEASE_DIR).rglob("*")):
        if not src.is_file() or ".ipynb_checkpoints" in src.parts:
            continue
        dest = workspace / src.relative_to(course_root / RELEASE_DIR)
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        copied.append(dest)
    return copied


def cmd_prepare(args) -> int:
    from . import data, models
    from .grading import default_course_root

    t0 = time.perf_counter()
    folder = models.ensure_cache()
    print(f"model cache: {folder} ({time.perf_counter() - t0:.1f} s)")
    for corpus in data.available_corpora():
        sizes = {split: len(data.documents(corpus, split)) for split in data.SPLITS}
        print(f"corpus {corpus}: " + ", ".join(f"{n} {split} documents" for split, n in sizes.items()))
    root = Path(args.course_root) if args.course_root else default_course_root()
    workspace = workspace_dir(root)
    copied = fill_workspace(root, workspace)
    print(f"workspace: {workspace} ({len(copied)} new files; existing notebooks left untouched)")
    return 0


def cmd_eval(args) -> int:
    from . import evaluate, models
    from .budget import get_budget

    budget = get_budget()
    model, tokenizer = models.load_model(args.model)
    print("pinned perplexity protocol:")
    print(evaluate.describe_protocol())
    n_tokens = args.tokens or budget.eval_tokens
    for corpus in args.corpus:
        t0 = time.perf_counter()
        ppl = evaluate.perplexity(model, tokenizer, corpus=corpus, n_tokens=n_tokens)
        print(f"{args.model} | {corpus} eval | {n_tokens} tokens | budget {budget.name} | "
              f"perplexity {ppl:.4f} | {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_workspace(args) -> int:
    from .grading import default_course_root

    root = Path(args.course_root) if args.course_root else default_course_root()
    workspace = workspace_dir(root)
    for path in fill_workspace(root, workspace):
        print(f"added {path}")
    print(f"workspace: {workspace}")
    return 0


def cmd_lab(args) -> int:
    cmd_prepare(args)
    from .grading import default_course_root

    root = Path(args.course_root) if args.course_root else default_course_root()
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={workspace_dir(root)}", *args.lab_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in argv:
        argv.append("--allow-root")
    # Kernels and terminals started by the server find this environment's programs.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.execv(sys.executable, argv)  # replaces this process; Ctrl-C stops JupyterLab
    return 0


def cmd_check(args) -> int:
    from .grading import check_notebook, default_course_root

    root = Path(args.course_root) if args.course_root else default_course_root()
    notebook = Path(args.notebook)
    if notebook.suffix != ".ipynb":  # an assignment id: the learner's copy in the workspace
        notebook = workspace_dir(root) / args.notebook / f"{args.notebook}.ipynb"
    print(f"grading a copy of {notebook} with every test, hidden ones included (your notebook is not changed); "
          "this runs the whole notebook ...", flush=True)
    rows = check_notebook(notebook, root)
    width = max(len(row.grade_id) for row in rows)
    for row in rows:
        line = f"{row.grade_id:<{width}}  {row.score:g} / {row.max_score:g}"
        print(line + (f"   {row.message.splitlines()[0][:300]}" if row.message else ""))
    total, best = sum(r.score for r in rows), sum(r.max_score for r in rows)
    print(f"{'total':<{width}}  {total:g} / {best:g}")
    return 0


def cmd_release(args) -> int:
    from .grading import release_all

    ids = release_all(Path(args.course_root) if args.course_root else None)
    print(f"regenerated notebooks/ for: {', '.join(ids)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quant-course", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course-root", help="checkout of the course (default: the one course_lib runs from)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="build the model cache, check corpora, fill the workspace").set_defaults(run=cmd_prepare)
    ev = sub.add_parser("eval", help="print the baseline perplexity under the pinned protocol")
    ev.add_argument("--model", default="smollm2-135m", help="model name, folder or Hugging Face id")
    ev.add_argument("--corpus", nargs="+", default=["wiki"], help="corpora to evaluate (wiki, code, sql)")
    ev.add_argument("--tokens", type=int, default=None, help="evaluation tokens (default: the budget's)")
    ev.set_defaults(run=cmd_eval)
    sub.add_parser("workspace", help="copy new released notebooks into the workspace").set_defaults(run=cmd_workspace)
    lab = sub.add_parser("lab", help="prepare, then open JupyterLab on the workspace; "
                         "further arguments go to jupyter lab (e.g. --no-browser --port 8890)")
    lab.set_defaults(run=cmd_lab)
    check = sub.add_parser("check", help="grade your copy of a notebook with the hidden tests (never changes it)")
    check.add_argument("notebook", help="your notebook (workspace/01_absmax/01_absmax.ipynb) or an assignment id (01_absmax)")
    check.set_defaults(run=cmd_check)
    sub.add_parser("release", help="regenerate notebooks/ from solutions/").set_defaults(run=cmd_release)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.lab_args = extra
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"quant-course {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
