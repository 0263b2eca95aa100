"""The grading tools a learner and an instructor use: own_work (exercise integrity) and `quant-course check`."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from course_lib import cli, grading, gptq, quantize
from course_lib.quantize import absmax_params as imported_alias


def test_own_work_refuses_every_route_to_the_function_and_restores_it():
    x = torch.randn(6, 8)
    routes = {
        "module attribute": lambda: quantize.absmax_quantize(x),
        "name imported elsewhere": lambda: imported_alias(x),
        "call inside another library function": lambda: quantize.quantize(x, 8, "channel"),
        "decorated function": lambda: gptq.gptq_quantize(x, torch.eye(8), group_size=8),
    }
    with grading.own_work("my_quantizer", quantize.absmax_quantize, quantize.absmax_params, gptq.gptq_quantize):
        for route, call in routes.items():
            with pytest.raises(NotImplementedError, match="write my_quantizer yourself.*course_lib.quantize|gptq"):
                call()
    for call in routes.values():  # all restored
        call()
    with pytest.raises(RuntimeError):
        with grading.own_work("x", quantize.absmax_params):
            raise RuntimeError("a failing test")
    assert quantize.absmax_params(x).numel() == 1  # restored after an error too


def test_own_wraps_an_answer():
    def mine(x):
        return quantize.absmax_quantize(x)  # a learner calling the library

    def honest(x):
        return x.abs().max() / 127

    with pytest.raises(NotImplementedError, match="write mine yourself"):
        grading.own(mine, quantize.absmax_quantize)(torch.ones(3))
    assert float(grading.own(honest, quantize.absmax_quantize)(torch.ones(3))) == pytest.approx(1 / 127)
    assert quantize.absmax_quantize(torch.tensor([1.0, -2.0]))[0].tolist() == [64, -127]


@pytest.mark.course
def test_check_grades_a_copy_with_the_hidden_tests_and_never_changes_it(tmp_path, capsys):
    release = grading.default_course_root() / grading.RELEASE_DIR / "01_absmax" / "01_absmax.ipynb"
    solution = grading.default_course_root() / grading.SOURCE_DIR / "01_absmax" / "01_absmax.ipynb"
    nb = json.loads(release.read_text())
    answer = next(c for c in json.loads(solution.read_text())["cells"]
                  if c["metadata"].get("nbgrader", {}).get("grade_id") == "absmax_dequantize")
    for cell in nb["cells"]:  # the learner answered one exercise
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "absmax_dequantize":
            cell["source"] = answer["source"]
    mine = tmp_path / "01_absmax.ipynb"
    mine.write_text(json.dumps(nb))
    before = hashlib.sha256(mine.read_bytes()).hexdigest()
    assert cli.main(["check", str(mine)]) == 0
    out = capsys.readouterr().out
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == before
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("test_", "total"))}
    assert "2 / 2" in lines["test_absmax_dequantize"]
    assert "0 / 3" in lines["test_absmax_quantize"] and "NotImplementedError" in lines["test_absmax_quantize"]
    assert lines["total"].split()[1:] == ["2", "/", str(sum(int(l.split()[3]) for k, l in lines.items() if k != "total"))]


def test_check_explains_a_wrong_path(tmp_path):
    assert cli.main(["check", str(tmp_path / "nothing.ipynb")]) == 2
    (tmp_path / "poem.ipynb").write_text("{}")
    assert cli.main(["check", str(tmp_path / "poem.ipynb")]) == 2
