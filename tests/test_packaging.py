"""The wheel ships kernels/ as course_lib.kernels and no top-level `kernels` package, and no benchmark data."""
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_editable_install_maps_kernels_into_course_lib(repo):
    import course_lib.kernels

    assert course_lib.kernels.__file__.startswith(str(repo / "kernels"))


# What transformers 5 does when it builds a Llama model (it imports the PyPI distribution
# `kernels` when that is installed), then what `import kernels` gives.
_LLAMA_THEN_KERNELS = """
from transformers import LlamaConfig, LlamaForCausalLM
LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=1, intermediate_size=128, vocab_size=100,
                             num_attention_heads=4, num_key_value_heads=2))
try:
    import kernels
    print(getattr(kernels, "__file__", None) or "stand-in")
except ModuleNotFoundError as err:
    print("ModuleNotFoundError", err.name)
"""
# The same where no `kernels` distribution is installed (as on a GPU machine with transformers 5.17, where
# `python -m pytest` from the root once broke `import transformers`): the installed package and its metadata
# are hidden from this process before anything imports them.
_WITHOUT_THE_DISTRIBUTION = """
import importlib.machinery, importlib.metadata
_find_spec, _version = importlib.machinery.PathFinder.find_spec, importlib.metadata.version
def find_spec(name, path=None, target=None):
    return None if name == "kernels" and path is not None else _find_spec(name, path, target)
def version(name):
    if name == "kernels":
        raise importlib.metadata.PackageNotFoundError(name)
    return _version(name)
importlib.machinery.PathFinder.find_spec, importlib.metadata.version = staticmethod(find_spec), version
from transformers import LlamaConfig, LlamaForCausalLM
LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=1, intermediate_size=128, vocab_size=100,
                             num_attention_heads=4, num_key_value_heads=2))
import kernels
assert getattr(kernels, "__file__", None) is None and getattr(kernels, "__version__", "N/A") == "N/A"
try:
    from kernels import get_kernel
except ImportError as err:
    print(err)
"""


def test_repository_root_on_sys_path_never_shadows_the_kernels_distribution(repo, tmp_path):
    """From the repository root (on sys.path as the current folder, as `python -m` and notebook
    servers put it), transformers builds a Llama model, `import kernels` is the installed
    distribution (or, where none is installed, a stand-in that transformers reads as absent), and `python -m course_lib.cli prepare` works."""
    done = subprocess.run([sys.executable, "-c", _LLAMA_THEN_KERNELS], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr[-3000:]
    found = done.stdout.strip().splitlines()[-1]
    if _installed("kernels"):
        assert found.endswith("__init__.py") and Path(found).parent != repo / "kernels", found
    else:
        assert found == "stand-in", found
    done = subprocess.run([sys.executable, "-c", _WITHOUT_THE_DISTRIBUTION], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "importable only as `course_lib.kernels`" in done.stdout, done.stdout

    env = {**os.environ, "QUANT_COURSE_WORKSPACE": str(tmp_path / "workspace")}
    done = subprocess.run([sys.executable, "-m", "course_lib.cli", "prepare"], capture_output=True, text=True,
                          cwd=repo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "workspace" / "00_memory_math" / "00_memory_math.ipynb").is_file()


def test_built_wheel_contents_and_import(repo, tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(repo)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("llm_quant_course-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "course_lib/kernels/__init__.py" in names
    assert {"course_lib/corpus_files/wiki.jsonl.xz", "course_lib/corpus_files/sql.jsonl.xz",
            "course_lib/corpus_files/NOTICE.md"} <= set(names)
    assert not [n for n in names if n.startswith("course_lib/") and n.endswith(".json")], "benchmark data is not package data"
    assert not [n for n in names if n.startswith("kernels/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "quant-course = course_lib.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import course_lib, course_lib.kernels, course_lib.data as d; "
            "assert course_lib.__file__.startswith(%r); "
            "print(len(d.documents('wiki', 'eval')))" % str(target))
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


def test_notebook_09_reads_its_recorded_runs_from_its_own_folder(repo):
    """The JSON files notebook 09 opens by name sit beside it (nbgrader releases them with it), and no other does."""
    folder = repo / "solutions" / "09_triton_kernels"
    cells = json.loads((folder / "09_triton_kernels.ipynb").read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    opened = set(re.findall(r"""open\(["']([\w.-]+\.json)["']""", code))
    assert opened, "notebook 09 opens no recorded run"
    assert opened == {p.name for p in folder.glob("*.json")}, (sorted(opened), sorted(p.name for p in folder.glob("*.json")))
    assert "benchmark_results" not in code


def test_no_script_folder_shadows_an_installed_package(repo):
    """A script run from benchmarks/ or scripts/ has its folder first on sys.path, and anything run from
    the root has the root: no module there may take the name of an installed package (as
    benchmarks/kernels.py once took transformers' `kernels`). kernels/ itself defers (tested above)."""
    installed = set(importlib.metadata.packages_distributions())
    places = {"": repo, "benchmarks": repo / "benchmarks", "scripts": repo / "scripts", "tests": repo / "tests"}
    clashes = []
    for label, folder in places.items():
        for path in folder.iterdir():
            name = path.stem if path.suffix == ".py" else path.name if path.is_dir() else None
            if name in installed and not (label == "" and name in {"kernels", "course_lib"}):
                clashes.append(f"{label}/{path.name}".lstrip("/"))
    assert not clashes, f"these shadow installed packages when their folder is on sys.path: {clashes}"
