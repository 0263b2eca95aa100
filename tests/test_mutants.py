"""The mutation suite: for every graded exercise, plausible wrong answers must lose points (issue #19).

The mutants are in tests/mutants/<assignment>.py; tests/mutation.py runs them. Printed per notebook:
how many mutants the visible tests catch (what a learner on their own sees), how many only the
hidden tests catch, and how many neither (must be none).
"""
from __future__ import annotations

import json

import pytest

from course_lib import grading
from mutation import MUTANT_DIR, REFERENCE_CALL, REPO, exercises, load_mutants, report, run_mutants

pytestmark = pytest.mark.course
ASSIGNMENTS = sorted(p.stem for p in MUTANT_DIR.glob("[0-9]*.py"))
MIN_MUTANTS = 3  # realistic mistakes per exercise, besides the reference call


def test_every_assignment_has_a_mutant_file():
    """A new notebook's graded exercises get their wrong answers too (issue #19)."""
    assignments = sorted(p.name for p in (REPO / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())
    assert assignments and ASSIGNMENTS == assignments, f"no tests/mutants file for {sorted(set(assignments) - set(ASSIGNMENTS))}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_exercise_has_its_mutants(assignment):
    import nbformat

    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    graded = {name for name, (_, tests) in exercises(nb).items() if tests}
    mutants = load_mutants(assignment)
    assert set(mutants) == graded, f"exercises without mutants: {sorted(graded - set(mutants))}"
    for exercise, named in mutants.items():
        assert REFERENCE_CALL in named, f"{exercise}: add the '{REFERENCE_CALL}' mutant"
        assert len(named) - 1 >= MIN_MUTANTS, f"{exercise}: {len(named) - 1} realistic mutants, want {MIN_MUTANTS}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mutants_lose_points(assignment):
    outcomes = run_mutants(assignment)
    print("\n" + report(assignment, outcomes))
    survivors = [f"{o.exercise}: {o.mutant}" for o in outcomes if o.caught_by == "neither"]
    assert not survivors, f"wrong answers that score full marks: {survivors}"
    references = [o for o in outcomes if o.mutant == REFERENCE_CALL]
    assert references and all(o.caught_by == "visible" for o in references)


def test_the_runner_agrees_with_nbgrader(tmp_path):
    """One mutant put into the solution notebook and graded by nbgrader autograde: it loses the points of the
    exercise the runner says it loses; any other loss is in a later exercise that calls the mutated function (the
    runner does not charge those: it is conservative)."""
    assignment, exercise, name = "01_absmax", "absmax_quantize", "truncates instead of rounding"
    [outcome] = run_mutants(assignment, {exercise: {name: load_mutants(assignment)[exercise][name]}})
    assert outcome.caught_by == "visible"
    solution = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    nb = json.loads(solution.read_text())
    [cell] = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == exercise]
    cell["source"] = load_mutants(assignment)[exercise][name]
    mutated = tmp_path / f"{assignment}.ipynb"
    mutated.write_text(json.dumps(nb))
    grades = grading.autograde_round_trip(REPO, assignment, {"mutant": mutated}, tmp_path / "course")["mutant"]
    order = grading.graded_cell_ids(solution)
    lost = [gid for gid in order if grades[gid].score < grades[gid].max_score]
    assert lost and lost[0] == f"test_{exercise}", lost
    assert all(order.index(gid) > order.index(f"test_{exercise}") for gid in lost[1:]), lost
