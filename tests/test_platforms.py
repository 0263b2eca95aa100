"""Where Triton cannot be installed (macOS, Windows), notebook 09 degrades instead of crashing.

The test hides Triton from the notebook's kernel (a `triton` package on PYTHONPATH whose import
fails, as on a platform without Triton wheels), runs the solution notebook, and checks that
every cell that needs no kernel runs, and that every graded kernel cell fails with the message
that says why.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib import grading

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / grading.SOURCE_DIR / "09_triton_kernels" / "09_triton_kernels.ipynb"
pytestmark = pytest.mark.course


def test_stand_in_defines_kernels_that_refuse_to_launch():
    from course_lib.kernels import stand_in

    @stand_in.triton.jit
    def kernel(x_ptr, BLOCK: stand_in.tl.constexpr):
        pass

    assert stand_in.triton.cdiv(7, 2) == 4 and stand_in.triton.cdiv(8, 2) == 4
    with pytest.raises(stand_in.TritonMissing, match="Linux"):
        kernel[(1,)](None, BLOCK=16)
    with pytest.raises(stand_in.TritonMissing, match="course_lib.kernels.launch.split_k_grid needs Triton"):
        stand_in.unavailable("course_lib.kernels.launch").split_k_grid
    with pytest.raises(stand_in.TritonMissing):
        stand_in.tl.program_id(0)


def test_notebook_09_without_triton(tmp_path, monkeypatch):
    """Cells that need no kernel run; the graded kernel cells fail with TritonMissing, not a crash."""
    hidden = tmp_path / "no-triton" / "triton"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("simulated: no Triton wheel for this platform")\n')
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    errors = {}
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                meta = cell.get("metadata", {}).get("nbgrader", {})
                errors[meta.get("grade_id") or index] = (output["ename"], output["evalue"])
    graded = grading.graded_cell_ids(NOTEBOOK)
    assert set(errors) == set(graded), f"cells that failed: {json.dumps(errors, indent=1)}"
    for grade_id, (name, value) in errors.items():
        assert name == "TritonMissing" and "Linux" in value, (grade_id, name, value)
    setup = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "setup")
    printed = "".join(o.get("text", "") for o in setup.outputs)
    assert "Triton is not installed" in printed and "triton not installed" in printed
