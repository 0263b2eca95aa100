"""Shared test set-up: nothing writes to the home folder, and the budget is small."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def model_and_tokenizer():
    from course_lib.models import load_model

    return load_model(device="cpu")
