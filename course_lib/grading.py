"""The nbgrader pipeline: generate the released notebooks, and grade a round trip.

``solutions/<id>/<id>.ipynb`` is the only hand-edited notebook (nbgrader's *source*).
``notebooks/<id>/`` is nbgrader's *release*, generated from it by :func:`release_all`
(``quant-course release``) and committed.

Every step runs the real ``nbgrader`` command line in a scratch course folder, with the
repository's ``nbgrader_config.py`` and the scratch paths passed through the environment,
so the instructor's own commands and the tests behave the same way. Scores are read from
the gradebook, never from an exit code: ``nbgrader validate`` exits 0 on failure, and
``nbgrader autograde`` exits non-zero when one submission misbehaves while still grading
the others.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = "solutions"
RELEASE_DIR = "notebooks"


def default_course_root() -> Path:
    """The repository that holds ``nbgrader_config.py`` (an editable install's checkout)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "nbgrader_config.py").is_file():
        raise FileNotFoundError(
            f"No nbgrader_config.py next to {root}: the grading tools work on a checkout of the "
            "course repository. Pass --course-root PATH (the folder with solutions/ and nbgrader_config.py)."
        )
    return root


def assignments(course_root: Path) -> list[str]:
    """Assignment ids: the folders of ``solutions/`` that hold a notebook of the same name."""
    source = Path(course_root) / SOURCE_DIR
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def _nbgrader(args: list[str], course_root: Path, scratch: Path, log: Path) -> int:
    """Run ``nbgrader ARGS`` with the course config, rooted in ``scratch``; output goes to ``log``."""
    env = dict(os.environ)
    env["QUANT_COURSE_ROOT"] = str(scratch)
    env["QUANT_COURSE_GRADEBOOK"] = f"sqlite:///{scratch / 'gradebook.db'}"
    env["QUANT_COURSE_EXCHANGE"] = str(scratch / "exchange")
    # nbgrader runs helper programs (alembic) by name: find the ones of this environment
    # even when it is not activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with open(log, "a") as out:
        out.write(f"\n$ nbgrader {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args, "--log-level=INFO"],
            cwd=course_root,  # where nbgrader_config.py is found
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return done.returncode


def _scratch_course(course_root: Path, assignment: str, scratch: Path) -> Path:
    """Copy one assignment's source into a scratch course folder and generate its release."""
    shutil.copytree(Path(course_root) / SOURCE_DIR / assignment, scratch / SOURCE_DIR / assignment)
    log = scratch / "nbgrader.log"
    code = _nbgrader(["generate_assignment", assignment, "--force"], course_root, scratch, log)
    released = scratch / RELEASE_DIR / assignment
    if code != 0 or not released.is_dir():
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed; its log:\n{log.read_text()[-4000:]}")
    return released


def generate_release(course_root: Path, assignment: str, out_dir: Path) -> Path:
    """Generate the release of ``assignment`` into ``out_dir/<assignment>/`` (replacing it)."""
    with tempfile.TemporaryDirectory(prefix="quant-course-release-") as tmp:
        released = _scratch_course(course_root, assignment, Path(tmp))
        target = Path(out_dir) / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(released, target)
    return target


def release_all(course_root: Path | None = None) -> list[str]:
    """Regenerate ``notebooks/`` from ``solutions/``; returns the assignment ids.

    ``notebooks/`` is a generated folder: learners work on copies in their workspace
    (see ``quant-course workspace``), so regenerating it never touches their work.
    """
    root = Path(course_root) if course_root is not None else default_course_root()
    ids = assignments(root)
    for assignment in ids:
        generate_release(root, assignment, root / RELEASE_DIR)
    stale = [p for p in (root / RELEASE_DIR).iterdir() if p.is_dir() and p.name not in ids]
    for folder in stale:  # an assignment removed from solutions/
        shutil.rmtree(folder)
    return ids


@dataclass(frozen=True)
class CellGrade:
    grade_id: str
    score: float
    max_score: float


def autograde_round_trip(
    course_root: Path, assignment: str, submissions: dict[str, Path], scratch: Path
) -> dict[str, dict[str, CellGrade]]:
    """Grade each student's notebook with ``nbgrader autograde``; return per-cell grades.

    submissions: student id -> path of the notebook that student hands in.
    Returns {student: {grade_id: CellGrade}} read from the gradebook, for the auto-graded cells
    (manually graded answers wait for a person: see :func:`manual_cell_ids`). The nbgrader log
    is ``scratch / 'nbgrader.log'``.
    """
    from nbgrader.api import Gradebook

    scratch = Path(scratch)
    auto = set(graded_cell_ids(Path(course_root) / SOURCE_DIR / assignment / f"{assignment}.ipynb"))
    _scratch_course(course_root, assignment, scratch)
    for student, notebook in submissions.items():
        folder = scratch / "submitted" / student / assignment
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / f"{assignment}.ipynb")
    # The exit code is not trusted: one misbehaving submission makes it non-zero while
    # the others are still graded. Missing grades below are the failure signal.
    _nbgrader(["autograde", assignment, "--force"], course_root, scratch, scratch / "nbgrader.log")

    results: dict[str, dict[str, CellGrade]] = {}
    with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gradebook:
        for student in submissions:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            results[student] = {  # manually graded answers have no score until a person grades them
                g.cell.name: CellGrade(g.cell.name, float(g.score), float(g.max_score)) for g in notebook.grades
                if g.cell.name in auto
            }
    return results


def graded_cell_ids(notebook_path: Path) -> list[str]:
    """grade_ids of the auto-graded cells (test cells: graded, not a solution) of a notebook, in order."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    return [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade") and not c["metadata"]["nbgrader"].get("solution")
    ]


def manual_cell_ids(notebook_path: Path) -> list[str]:
    """grade_ids of the manually graded answers (graded solution cells: a person reads and scores them)."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    return [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c["metadata"]["nbgrader"].get("solution")
    ]


# ---------------------------------------------------------------- the learner's own work

def _refuse(*args, **kwargs):
    raise NotImplementedError("MESSAGE")  # the constant is replaced by the exercise's message


@contextmanager
def own_work(exercise: str, *functions):
    """While open, each of ``functions`` (library functions that compute what the exercise asks)
    raises NotImplementedError saying so, however the learner reached it (a module attribute, a
    name imported into the notebook, a call inside another library function).

    Test cells wrap the call of the learner's answer in it and compute their reference outside it:

        with grading.own_work("absmax_quantize", _quantize.absmax_quantize, _quantize.absmax_params):
            q, scale = absmax_quantize(x)

    It swaps each function's code object (``__code__``) for the span of the block, so every
    reference to the function object is covered; decorated functions are reached through
    ``__wrapped__``. Restored on exit, also when the block raises.
    """
    swapped = []
    try:
        for function in functions:
            target = function
            while hasattr(target, "__wrapped__"):  # functools.wraps decorators (torch.no_grad, ...)
                target = target.__wrapped__
            if target.__code__.co_freevars:
                raise TypeError(f"own_work cannot guard {target.__qualname__}, a closure; guard what calls it.")
            message = (f"This exercise asks you to write {exercise} yourself, and your code called "
                       f"{target.__module__}.{target.__qualname__}, which computes the same thing. Use torch "
                       "operations and the functions you wrote in earlier exercises (the notebook's first "
                       "cell says what graded cells may use).")
            code = _refuse.__code__
            consts = tuple(message if c == "MESSAGE" else c for c in code.co_consts)
            swapped.append((target, target.__code__))
            target.__code__ = code.replace(co_consts=consts, co_name=target.__code__.co_name)
        yield
    finally:
        for target, original in reversed(swapped):
            target.__code__ = original


def own(answer, *library_functions):
    """``answer`` (a learner's function) wrapped so that each call runs inside :func:`own_work`:
    the library functions that do what it should do itself raise while it runs.

        absmax_quantize_ = grading.own(absmax_quantize, _quantize.absmax_quantize, _quantize.absmax_params)
        q, scale = absmax_quantize_(x)
    """
    def guarded(*args, **kwargs):
        with own_work(getattr(answer, "__name__", "this function"), *library_functions):
            return answer(*args, **kwargs)

    return guarded


# ---------------------------------------------------------------- feedback for a learner on their own

@dataclass(frozen=True)
class CheckedCell:
    grade_id: str
    score: float
    max_score: float
    message: str  # the failing test's error, "" when it passed


def _errors(notebook_path: Path) -> dict[str, str]:
    """grade_id -> "ErrorName: message" of each cell of an executed notebook that raised."""
    found = {}
    for cell in json.loads(Path(notebook_path).read_text())["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []):
            if grade_id and output.get("output_type") == "error":
                found[grade_id] = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return found


def check_notebook(notebook: Path, course_root: Path | None = None) -> list[CheckedCell]:
    """Grade a copy of a learner's ``notebook`` with the full (hidden) tests, in a scratch course.

    The assignment is the notebook's name (``01_absmax.ipynb`` -> ``01_absmax``). The learner's
    file is only read. Returns one row per auto-graded cell, in notebook order.
    """
    notebook = Path(notebook)
    root = Path(course_root) if course_root is not None else default_course_root()
    known = assignments(root)
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise FileNotFoundError(f"{notebook} is not a notebook file; pass your copy, e.g. workspace/01_absmax/01_absmax.ipynb.")
    if notebook.stem not in known:
        raise ValueError(f"{notebook.name} is no assignment of this course; its name must be one of {known} (.ipynb).")
    with tempfile.TemporaryDirectory(prefix="quant-course-check-") as tmp:
        grades = autograde_round_trip(root, notebook.stem, {"you": notebook}, Path(tmp))["you"]
        errors = _errors(Path(tmp) / "autograded" / "you" / notebook.stem / notebook.name)
    order = graded_cell_ids(root / SOURCE_DIR / notebook.stem / f"{notebook.stem}.ipynb")
    return [CheckedCell(g, grades[g].score, grades[g].max_score, errors.get(g, "") if grades[g].score < grades[g].max_score
                        else "") for g in order if g in grades]
