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


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def model_and_tokenizer():
    from course_lib.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_llama():
    """A factory for a small random Llama (2 blocks, hidden 64, grouped-query attention), in eval mode.

    ``tiny_llama(seed=0, **config_overrides)``: a fresh model per call, so tests may mutate it.
    """
    def make(seed: int = 0, **overrides):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(seed)
        settings = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=100,
                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
        settings.update(overrides)
        return LlamaForCausalLM(LlamaConfig(**settings)).eval()

    return make
