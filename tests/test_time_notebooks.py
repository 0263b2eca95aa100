"""scripts/time_notebooks.py: the parts that read an executed notebook, and its refusal of unknown names."""
import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_notebooks.py"
spec = importlib.util.spec_from_file_location("time_notebooks", SCRIPT)
time_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_notebooks)


def executed_cell(start: str, end: str, text: str = ""):
    cell = new_code_cell("print('x')")
    cell.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
    if text:
        cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


def test_cell_seconds_reads_nbclient_timestamps():
    cell = executed_cell("2026-12-07T23:00:00.250000Z", "2026-12-07T23:01:05.750000Z")
    assert time_notebooks.cell_seconds(cell) == pytest.approx(65.5)
    assert time_notebooks.cell_seconds(new_code_cell("1")) is None  # never executed


def test_run_log_line_is_the_last_summary_printed():
    nb = new_notebook(cells=[executed_cell("2026-12-07T23:00:00Z", "2026-12-07T23:00:01Z", "This run: early\n"),
                             executed_cell("2026-12-07T23:00:01Z", "2026-12-07T23:00:02Z",
                                           "noise\nThis run: 2 model quantizations; 0 min 3 s since ...\n")])
    nb = nbformat.reads(nbformat.writes(nb), 4)
    assert time_notebooks.run_log_line(nb) == "This run: 2 model quantizations; 0 min 3 s since ..."
    assert time_notebooks.run_log_line(new_notebook(cells=[new_code_cell("1")])) is None


def test_an_unknown_notebook_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(SystemExit, match="names are the folders of solutions/"):
        time_notebooks.time_one("99_nothing", "ci", tmp_path, 60.0)
