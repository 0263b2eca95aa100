"""The course pipeline, for every assignment in solutions/.

(a) the solution scores full marks on every graded cell;
(b) the released notebook, untouched, scores 0 on every graded cell;
(c) notebooks/ is exactly what the generator makes from solutions/ (checked on the release the
    round trip generates, so each assignment is generated once per run);
(d) no committed notebook has outputs;
plus: a learner who deletes graded test cells gets them back when graded, and the lab
command serves JupyterLab with the nbgrader extension.

One `nbgrader autograde` run per assignment grades all submissions (the solution, the
release, and for the first assignment a release with its test cells deleted), so each
notebook runs as few times as possible. Scores come from the gradebook.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from course_lib import grading

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = grading.assignments(REPO)
pytestmark = pytest.mark.course


def _notebooks(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob("*/*.ipynb"))


def test_every_assignment_has_its_release_and_nothing_else_is_released():
    released = sorted(p.name for p in (REPO / "notebooks").iterdir() if p.is_dir())
    assert ASSIGNMENTS and released == ASSIGNMENTS, "run `make release` (solutions/ and notebooks/ differ)"
    for assignment in ASSIGNMENTS:
        assert (REPO / "notebooks" / assignment / f"{assignment}.ipynb").is_file(), assignment


@pytest.mark.parametrize("path", _notebooks("solutions") + _notebooks("notebooks"), ids=lambda p: p.parent.name + "/" + p.parent.parent.name)
def test_committed_notebooks_have_no_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path} has outputs in cells {dirty}: clear them (Kernel > Restart and clear outputs)"


@pytest.mark.parametrize("path", _notebooks("solutions"), ids=lambda p: p.parent.name)
def test_solution_cells_follow_the_conventions(path):
    """Every test cell opens with a one-line docstring, has a visible assert and hidden tests;
    a manually graded answer is a markdown solution cell worth points."""
    cells = json.loads(path.read_text())["cells"]
    graded = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
              and not c["metadata"]["nbgrader"].get("solution")]
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("solution"):
            assert cell["cell_type"] == "markdown" and meta.get("points", 0) > 0, meta.get("grade_id")
    manual = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
              and c["metadata"]["nbgrader"].get("solution")]
    assert len(graded) + len(manual) >= 3, "at least three graded exercises (auto-graded tests or manual answers)"
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.get("metadata", {})]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    for cell in graded:
        source = "".join(cell["source"])
        first = source.splitlines()[0]
        assert first.startswith('"""') and first.endswith('"""') and len(first) > 6, first
        visible = source.split("### BEGIN HIDDEN TESTS")[0]
        assert "assert" in visible and "### BEGIN HIDDEN TESTS" in source, cell["metadata"]["nbgrader"]["grade_id"]
    # nbgrader 0.9's autograde drops the metadata of a cell that is neither locked, a solution nor graded,
    # and then fails on the missing grade_id: such cells must carry no nbgrader metadata at all
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is not None:
            assert meta.get("locked") or meta.get("solution") or meta.get("grade"), meta.get("grade_id")


def _assert_release_is_up_to_date(assignment: str, generated: Path) -> None:
    """notebooks/<assignment> is exactly what nbgrader generates from solutions/ (here: in the grading run)."""
    committed = REPO / grading.RELEASE_DIR / assignment
    gen_files = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    com_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert gen_files == com_files
    for rel in gen_files:
        assert (generated / rel).read_bytes() == (committed / rel).read_bytes(), (
            f"notebooks/{assignment}/{rel} is out of date: run `make release` and commit the result")


def _strip_test_cells(notebook: Path, out: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    removed = [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    nb["cells"] = [c for c in nb["cells"] if not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    out.write_text(json.dumps(nb))
    return removed


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograde_round_trip(assignment, tmp_path):
    solution = REPO / grading.SOURCE_DIR / assignment / f"{assignment}.ipynb"
    release = REPO / grading.RELEASE_DIR / assignment / f"{assignment}.ipynb"
    graded_ids = grading.graded_cell_ids(solution)
    submissions = {"solution": solution, "release": release}
    if assignment == ASSIGNMENTS[0]:
        deleted = tmp_path / "deleted.ipynb"
        assert _strip_test_cells(solution, deleted) == graded_ids
        submissions["deleter"] = deleted

    results = grading.autograde_round_trip(REPO, assignment, submissions, tmp_path / "course")
    log = (tmp_path / "course" / "nbgrader.log").read_text()[-3000:]
    # the release the round trip generated (once per run) is the committed one
    _assert_release_is_up_to_date(assignment, tmp_path / "course" / grading.RELEASE_DIR / assignment)

    for student, expect_full in [("solution", True), ("release", False), ("deleter", True)]:
        if student not in results:
            continue
        grades = results[student]
        assert sorted(grades) == sorted(graded_ids), (student, sorted(grades), log)
        for gid, grade in grades.items():
            assert grade.max_score > 0
            expected = grade.max_score if expect_full else 0
            assert grade.score == expected, f"{student}: {gid} scored {grade.score}/{grade.max_score}\n{log}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_lab_command_serves_the_course_with_nbgrader(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "QUANT_COURSE_WORKSPACE": str(tmp_path / "workspace")}
    cmd = [sys.executable, "-m", "course_lib.cli", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, body = _get(f"{base}/api/status", token)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not start:\n{server.stdout.read().decode()[-3000:]}")
                time.sleep(0.5)
        assert status == 200 and "started" in json.loads(body)

        _, listing = _get(f"{base}/api/contents/00_memory_math", token)
        names = [item["name"] for item in json.loads(listing)["content"]]
        assert "00_memory_math.ipynb" in names

        _, page = _get(f"{base}/lab", token)
        config = json.loads(page.split('id="jupyter-config-data" type="application/json">', 1)[1].split("</script>", 1)[0])
        federated = [ext["name"] for ext in config.get("federated_extensions", [])]
        assert "@jupyter/nbgrader" in federated
        assert not any("nbgrader" in d for d in config.get("disabledExtensions", []))
        status, _ = _get(f"{base}/formgrader", token)  # nbgrader's server extension answers
        assert status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
