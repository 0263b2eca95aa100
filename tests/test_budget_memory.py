"""Budgets and the memory formulas."""
import pytest
import torch
from torch import nn

from course_lib import memory
from course_lib.budget import BUDGETS, get_budget


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv("QUANT_COURSE_BUDGET", "full")
    assert get_budget() is BUDGETS["full"]
    monkeypatch.setenv("QUANT_COURSE_BUDGET", "CI")
    assert get_budget() is BUDGETS["ci"]
    monkeypatch.delenv("QUANT_COURSE_BUDGET")
    assert get_budget().name == "full"  # learners get the full budget by default


def test_ci_budget_is_smaller_everywhere():
    full, ci = BUDGETS["full"], BUDGETS["ci"]
    assert ci.eval_tokens < full.eval_tokens and ci.calib_samples < full.calib_samples
    assert ci.calib_seq_len <= full.calib_seq_len


def test_unknown_budget_names_the_choices(monkeypatch):
    monkeypatch.setenv("QUANT_COURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="full, ci"):
        get_budget()


def test_70b_table():
    assert memory.weight_bytes(70e9, 16) / memory.GB == pytest.approx(140)
    assert memory.weight_bytes(70e9, 8) / memory.GB == pytest.approx(70)
    assert memory.weight_bytes(70e9, 4) / memory.GB == pytest.approx(35)


def test_grouped_bytes_counts_partial_groups_and_matches_bits_per_weight():
    assert memory.grouped_bytes(65, 8, 64) == 65 + 2 * 2
    assert memory.bits_per_weight(4, 64, zero_bits=4) == 4 + 20 / 64
    n = 64 * 1000
    assert memory.grouped_bytes(n, 4, 64, 16, 4) == pytest.approx(n * memory.bits_per_weight(4, 64, 16, 4) / 8)
    with pytest.raises(ValueError, match="group_size"):
        memory.bits_per_weight(4, 0)


def test_kv_cache_bytes_for_config_uses_kv_heads():
    class Cfg:
        num_attention_heads, num_key_value_heads, hidden_size, num_hidden_layers, head_dim = 9, 3, 576, 30, 64

    assert memory.kv_cache_bytes_for(Cfg, 2048) == 2 * 30 * 3 * 64 * 2048 * 2


def test_memory_footprint_counts_shared_storage_once():
    emb = nn.Embedding(100, 8)
    head = nn.Linear(8, 100, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head, "proj": nn.Linear(8, 8).half()})
    model.register_buffer("stat", torch.zeros(3))
    expected = 100 * 8 * 4 + (8 * 8 + 8) * 2 + 3 * 4
    assert memory.memory_footprint(model) == expected


def test_quantized_model_bytes_on_a_toy_model():
    model = nn.ModuleDict({"a": nn.Linear(128, 64, bias=False), "lm_head": nn.Linear(64, 10, bias=False)})
    got = memory.quantized_model_bytes(model, 4, group_size=64, zero_bits=4, other_bits=16)
    expected = 64 * (128 * 4 / 8 + 2 * 20 / 8) + 64 * 10 * 2
    assert got == pytest.approx(expected)
    per_channel = memory.quantized_model_bytes(model, 8, group_size=None)
    assert per_channel == pytest.approx(64 * (128 + 2) + 64 * 10 * 2)


def test_real_model_footprint_matches_parameter_count(model_and_tokenizer):
    model, _ = model_and_tokenizer
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 134_515_008
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert memory.memory_footprint(model) == n_params * 4 + buffers
    # Every linear weight except the tied lm_head, quantized; the embedding stays at other_bits.
    linear = sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Linear) and "lm_head" not in n)
    rest = n_params - linear
    expected = linear * memory.bits_per_weight(4, 64, 16, 4) / 8 + rest * 2 + buffers / 4 * 2
    assert memory.quantized_model_bytes(model, 4, group_size=64, zero_bits=4) == pytest.approx(expected)
