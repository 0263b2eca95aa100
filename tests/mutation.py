"""Graded exercises against plausible wrong answers: the mutation suite's runner.

``tests/mutants/<assignment>.py`` defines ``MUTANTS = {answer grade_id: {mutant name: cell source}}``:
for each graded exercise, the mistakes a learner makes (written out as the whole answer cell) and
``"reference call"``, an answer that calls the library function the exercise re-creates.

:func:`run_mutants` runs the solution notebook top to bottom in one Jupyter kernel. When it
reaches the first test cell of an exercise that has mutants, it puts each mutant in place of the
answer and runs that exercise's test cells twice: as the learner sees them (the hidden blocks
cut, as nbgrader's release cuts them), then whole, as the autograder runs them; then it puts the
correct answer back and goes on. nbgrader scores a test cell by whether it raises, so a mutant
"loses points" exactly when one of these cells raises: on the exercise's own cells this is the
score ``nbgrader autograde`` gives (``test_mutants`` checks one case against nbgrader itself). It
is conservative elsewhere: a mutant that would also break later exercises is not charged for it.
"""
from __future__ import annotations

import os
import re
import runpy
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
MUTANT_DIR = Path(__file__).resolve().parent / "mutants"
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
REFERENCE_CALL = "reference call"


@dataclass(frozen=True)
class Outcome:
    exercise: str  # the answer cell's grade_id
    mutant: str
    visible: str  # "" if every visible test passed, else the first error
    hidden: str  # "" if every whole test cell passed, else the first error

    @property
    def caught_by(self) -> str:
        return "visible" if self.visible else "hidden" if self.hidden else "neither"


def load_mutants(assignment: str) -> dict[str, dict[str, str]]:
    path = MUTANT_DIR / f"{assignment}.py"
    return runpy.run_path(str(path))["MUTANTS"] if path.is_file() else {}


def visible_part(source: str) -> str:
    """A test cell as the release shows it: the hidden blocks removed."""
    return HIDDEN.sub("", source)


def _grading(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def exercises(nb) -> dict[str, tuple[int, list[int]]]:
    """answer grade_id -> (its cell index, the indices of its test cells: the graded cells after it, up to the
    next answer cell)."""
    found, current = {}, None
    for i, cell in enumerate(nb.cells):
        meta = _grading(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            current = meta["grade_id"]
            found[current] = (i, [])
        elif cell.cell_type == "code" and meta.get("grade") and not meta.get("solution") and current:
            found[current][1].append(i)
    return found


def _run(client, nb, index: int, source: str) -> str:
    """Execute ``source`` in the kernel as cell ``index``; "" when it ran, else the error's last line."""
    cell = nbformat.v4.new_code_cell(source)
    try:
        client.execute_cell(cell, index)
    except CellExecutionError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        return lines[-1] if lines else "error"
    return ""


def run_mutants(assignment: str, mutants: dict[str, dict[str, str]] | None = None,
                timeout: int | None = None) -> list[Outcome]:
    """Every mutant of ``assignment`` graded against its exercise's visible and whole test cells. ``timeout``:
    seconds a cell may take, by default ``$QUANT_COURSE_CELL_TIMEOUT`` or 900 (as nbgrader_config.py)."""
    if timeout is None:
        timeout = int(os.environ.get("QUANT_COURSE_CELL_TIMEOUT", "900"))
    mutants = load_mutants(assignment) if mutants is None else mutants
    path = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    layout = exercises(nb)
    unknown = set(mutants) - set(layout)
    if unknown:
        raise ValueError(f"{assignment}: no answer cell {sorted(unknown)}; answer cells: {sorted(layout)}")
    first_test = {tests[0]: name for name, (_, tests) in layout.items() if tests and name in mutants}
    # nbclient stores each executed cell at its index in nb.cells: keep the solution's own sources apart
    cells = [(cell.cell_type, cell.source, _grading(cell).get("grade_id")) for cell in nb.cells]
    outcomes: list[Outcome] = []
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for index, (kind, source, grade_id) in enumerate(cells):
            if kind != "code":
                continue
            if index in first_test:
                exercise = first_test[index]
                answer_index, tests = layout[exercise]
                for name, mutant in mutants[exercise].items():
                    error = _run(client, nb, answer_index, mutant)
                    if error:  # the mutant's own cell fails: nbgrader runs on, and every test of it fails
                        outcomes.append(Outcome(exercise, name, error, error))
                    else:
                        visible = next((e for t in tests if (e := _run(client, nb, t, visible_part(cells[t][1])))), "")
                        hidden = visible or next((e for t in tests if (e := _run(client, nb, t, cells[t][1]))), "")
                        outcomes.append(Outcome(exercise, name, visible, hidden))
                restored = _run(client, nb, answer_index, cells[answer_index][1])
                if restored:
                    raise RuntimeError(f"{assignment}: the solution of {exercise} failed when put back: {restored}")
            error = _run(client, nb, index, source)
            if error:
                raise RuntimeError(f"{assignment}: cell {index} ({grade_id}) of the solution failed: {error}")
    return outcomes


def report(assignment: str, outcomes: list[Outcome]) -> str:
    """A table: per exercise, mutants caught by the visible tests / by hidden ones only / by neither."""
    rows = [f"{assignment}: {'exercise':<32}{'visible':>8}{'hidden':>8}{'neither':>8}"]
    for exercise in dict.fromkeys(o.exercise for o in outcomes):
        mine = [o.caught_by for o in outcomes if o.exercise == exercise]
        rows.append(f"{'':<{len(assignment) + 2}}{exercise:<32}" + "".join(f"{mine.count(k):>8}" for k in
                                                                        ("visible", "hidden", "neither")))
    return "\n".join(rows)
