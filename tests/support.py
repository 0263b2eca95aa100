"""Builders the tests share: a tiny random model of each wired family, and random token ids.

Imported as ``from support import ...`` (pytest puts tests/ on sys.path); the ``tiny_llama``
fixture in conftest.py is :func:`tiny_model` for Llama.
"""
from __future__ import annotations

import torch

TINY = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=100, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=True)


def tiny_model(family: str = "llama", seed: int = 0, **overrides):
    """A small random causal LM of ``family`` (llama, mistral, qwen2, opt) in eval mode, seeded."""
    import transformers

    torch.manual_seed(seed)
    if family == "opt":
        settings = dict(hidden_size=64, num_hidden_layers=2, ffn_dim=128, vocab_size=100, num_attention_heads=4,
                        word_embed_proj_dim=64, max_position_embeddings=64)
        config, model = transformers.OPTConfig, transformers.OPTForCausalLM
    else:
        settings = dict(TINY)
        names = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2"}[family]
        config = getattr(transformers, f"{names}Config")
        model = getattr(transformers, f"{names}ForCausalLM")
    settings.update(overrides)
    return model(config(**settings)).eval()


def random_ids(n: int = 4, seq: int = 16, vocab: int = 100, seed: int = 0) -> torch.Tensor:
    """Token ids [n, seq] drawn uniformly below ``vocab``, the same for the same seed."""
    return torch.randint(0, vocab, (n, seq), generator=torch.Generator().manual_seed(seed))
