"""Shared test set-up: nothing writes to the home folder, and the budget is small."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

# Set before any test imports Jupyter or IPython machinery.
_jupyter_home = Path(tempfile.mkdtemp(prefix="quant-course-jupyter-"))
for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                 ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")]:
    os.environ[var] = str(_jupyter_home / sub)
os.environ.setdefault("QUANT_COURSE_BUDGET", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter. triton.jit
# reads TRITON_INTERPRET when a kernel is defined, i.e. when course_lib.kernels is first
# imported, so it is set here, before pytest imports any test module (whatever the order).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Under pytest-xdist (make test runs two workers), the workers share the cores: each takes its
# share of threads, and the notebook kernels a worker starts inherit it, so that the workers
# never ask for more threads than there are cores. (Measured on 2 cores: notebook 05 took 349 s
# with one thread against 181 s with two, so the suite gains from running the single-threaded
# parts of one worker beside the other, and from balancing the notebooks below.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(_threads)
    torch.set_num_threads(_threads)

# Seconds each assignment's autograde round trip took with one thread (ci budget, 2-core x86_64,
# 2026-12-07), and its mutation run (tests/test_mutants.py). Under xdist (--dist loadgroup) these
# long tests are split into one group per worker, longest first onto the least loaded (LPT), so
# that the workers finish together; every other test is handed to whichever worker is free. One
# not listed counts as 60 s.
ROUND_TRIP_SECONDS = {"05_gptq": 370, "08_calibration": 300, "06_awq": 220, "07_mixed_precision": 125,
                      "04_activations": 90, "03_granularity": 80, "01_absmax": 50, "02_zero_point": 45,
                      "09_triton_kernels": 35, "00_memory_math": 30}
MUTATION_SECONDS = {"00_memory_math": 80, "01_absmax": 70, "02_zero_point": 90, "03_granularity": 120, "04_activations": 200, "05_gptq": 400, "06_awq": 250, "07_mixed_precision": 150,
                    "08_calibration": 330, "09_triton_kernels": 110}
LONG_TESTS = {"test_autograde_round_trip": ROUND_TRIP_SECONDS, "test_mutants_lose_points": MUTATION_SECONDS}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    long = [item for item in items if item.originalname in LONG_TESTS]
    if workers < 2 or not long:
        return

    def seconds(item):
        return LONG_TESTS[item.originalname].get(item.callspec.params["assignment"], 60)

    load = [0.0] * workers
    for item in sorted(long, key=lambda i: -seconds(i)):
        worker = load.index(min(load))
        load[worker] += seconds(item)
        item.add_marker(pytest.mark.xdist_group(f"long-{worker}"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def model_and_tokenizer():
    from course_lib.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]


@pytest.fixture(scope="session")
def tiny_llama():
    """A factory for a small random Llama (2 blocks, hidden 64, grouped-query attention), in eval mode.

    ``tiny_llama(seed=0, **config_overrides)``: a fresh model per call, so tests may mutate it.
    """
    from support import tiny_model

    return lambda seed=0, **overrides: tiny_model("llama", seed, **overrides)
