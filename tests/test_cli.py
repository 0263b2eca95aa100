"""The quant-course command and the learner's workspace."""
import json
import re
import subprocess
import sys

from course_lib import cli


def test_eval_prints_the_baseline():
    out = subprocess.run([sys.executable, "-m", "course_lib.cli", "eval", "--tokens", "1024"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"wiki eval \| 1024 tokens \| budget ci \| perplexity (\d+\.\d+)", out)
    assert match, out
    assert 10 < float(match.group(1)) < 40
    assert "stride" in out


def test_bad_budget_is_a_clear_error_not_a_traceback():
    done = subprocess.run([sys.executable, "-m", "course_lib.cli", "eval"], capture_output=True, text=True,
                          env={**__import__("os").environ, "QUANT_COURSE_BUDGET": "enormous"})
    assert done.returncode == 2
    assert "Use one of: full, ci" in done.stderr and "Traceback" not in done.stderr


def test_workspace_never_overwrites_a_learners_notebook(tmp_path):
    course = tmp_path / "course"
    (course / "notebooks" / "00_x").mkdir(parents=True)
    (course / "notebooks" / "00_x" / "00_x.ipynb").write_text(json.dumps({"v": "release 1"}))
    workspace = tmp_path / "ws"
    assert len(cli.fill_workspace(course, workspace)) == 1

    mine = workspace / "00_x" / "00_x.ipynb"
    mine.write_text(json.dumps({"v": "my answers"}))
    (course / "notebooks" / "00_x" / "00_x.ipynb").write_text(json.dumps({"v": "release 2"}))
    (course / "notebooks" / "01_y").mkdir()
    (course / "notebooks" / "01_y" / "01_y.ipynb").write_text("{}")
    copied = cli.fill_workspace(course, workspace)
    assert copied == [workspace / "01_y" / "01_y.ipynb"]
    assert json.loads(mine.read_text()) == {"v": "my answers"}
