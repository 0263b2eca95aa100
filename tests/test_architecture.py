"""The library's shape: course_lib's modules import only their own layer or the layers below it.

    course        cli, evaluate, quant_io, grading         the course around the methods
    drivers       rtn, gptq, awq, smoothquant, w8a8, ...   one module per method, plus the
                                                           block driver and measurements
    layers        quant_linear, swap, wiring, hooks        quantized modules, the module swap,
                                                           per-architecture wiring, the hook runner
    data          models, data, calibration, token_cache   plain data: no hooks, no methods
    primitives    quantize, packing, hessian, ...          pure tensor math and statistics

Read from the source (every import, at module level or inside a function), so a lazy import
cannot hide a cycle or an upward dependency.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_lib"

LAYERS = {
    "primitives": {"budget", "metrics", "quantize", "packing", "hessian", "input_stats", "act_quant", "awq_search",
                   "memory", "plots", "run_log"},
    "data": {"token_cache", "data", "calibration", "models"},
    "layers": {"quant_linear", "swap", "wiring", "hooks", "fold"},
    "drivers": {"methods", "blockwise", "rtn", "gptq", "awq", "smoothquant", "w8a8", "llm_int8", "nf4", "activations", "probes",
                "sensitivity", "sinks"},
    "course": {"evaluate", "quant_io", "grading", "interpret_check", "cli"},
}
ORDER = list(LAYERS)
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The course_lib modules that ``module`` imports (relative or absolute, anywhere in the file)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import ...
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("course_lib."):
                found.add(node.module.split(".")[1])
            elif node.module == "course_lib":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("course_lib."))
    return {name for name in found if (PACKAGE / f"{name}.py").is_file()}


def test_every_module_has_a_layer():
    assert set(_modules()) == set(LAYER_OF), "add the new module to LAYERS (and to the README's drawing)"


@pytest.mark.parametrize("module", _modules())
def test_imports_never_run_upward(module):
    upward = {name: LAYER_OF[name] for name in _imports(module)
              if ORDER.index(LAYER_OF[name]) > ORDER.index(LAYER_OF[module])}
    assert not upward, f"{module} ({LAYER_OF[module]}) imports from a higher layer: {upward}"


def test_no_import_cycles():
    graph = {module: _imports(module) for module in _modules()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph[module]):
            if state.get(name) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(path[path.index(name):] + [name])}")
            if name not in state:
                visit(name, path + [name])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_check_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a planted lazy import from calibration (data) into gptq (drivers)."""
    planted = tmp_path / "course_lib"
    planted.mkdir()
    for path in PACKAGE.glob("*.py"):
        (planted / path.name).write_text(path.read_text())
    (planted / "calibration.py").write_text((planted / "calibration.py").read_text()
                                            + "\n\ndef _late():\n    from .gptq import GPTQConfig\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", planted)
    with pytest.raises(AssertionError, match="higher layer"):
        test_imports_never_run_upward("calibration")
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycles()
