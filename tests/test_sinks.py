"""Attention-sink measurements (course_lib.sinks): each against a hand example or a direct computation."""
import pytest
import torch

from course_lib.hessian import output_error
from course_lib.hooks import record_inputs
from course_lib.input_stats import HessianAccumulator
from course_lib.probes import hessians_by_position
from course_lib.sinks import (attention_on_first, cosine_to_first, energy_in_last_columns, errors_by_position,
                              first_position_share, quantization_order, record_layer_inputs)
from support import random_ids


def test_attention_on_first_is_the_mean_weight_of_later_queries_on_key_0(tiny_llama):
    model = tiny_llama()
    before = model.config._attn_implementation
    ids = random_ids(3, 10)
    mass = attention_on_first(model, ids, batch_size=2)
    assert model.config._attn_implementation == before, "the attention implementation must be restored"
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    assert mass.shape == (layers, heads)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True, use_cache=False).attentions
    model.set_attn_implementation(before)
    expected = torch.stack([a[:, :, 1:, 0].mean(dim=(0, 2)) for a in attentions])  # [layers, heads]
    assert torch.allclose(mass, expected, atol=1e-6)
    assert ((mass >= 0) & (mass <= 1)).all()
    # a window of two tokens: query 1 splits its weight between keys 0 and 1
    two = attention_on_first(model, ids[:, :2])
    assert ((two > 0) & (two < 1)).all()
    with pytest.raises(ValueError, match="seq_len >= 2"):
        attention_on_first(model, ids[:, :1])


def test_record_layer_inputs_returns_each_linears_input_per_window(tiny_llama):
    model = tiny_llama()
    ids = random_ids(5, 7)
    name = "model.layers.1.self_attn.v_proj"
    X = record_layer_inputs(model, [name], ids, batch_size=2)[name]
    seen = []
    with torch.no_grad(), record_inputs({name: model.get_submodule(name)}, lambda n, x: seen.append(x)):
        model(input_ids=ids, use_cache=False)
    assert X.shape == (5, 7, model.config.hidden_size) and X.dtype == torch.float32
    assert torch.allclose(X, seen[0], atol=1e-6)


def test_cosine_to_first_by_hand_and_against_all_pairs():
    # position 0 along e0, the others along e1 (two of them scaled): orthogonal to 0, parallel to each other
    X = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 0.5]]])  # [1 window, 4 positions, 2]
    to_first, between = cosine_to_first(X)
    assert to_first.shape == (1, 3) and torch.allclose(to_first, torch.zeros(1, 3))
    assert between.shape == (1,) and torch.allclose(between, torch.ones(1))
    # random windows: the mean over pairs t != u equals the brute-force mean
    X = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(0))
    to_first, between = cosine_to_first(X)
    unit = X / X.norm(dim=-1, keepdim=True)
    for w in range(2):
        cos = unit[w, 1:] @ unit[w, 1:].T  # [5, 5]
        off = cos[~torch.eye(5, dtype=torch.bool)]
        assert torch.allclose(between[w], off.mean(), atol=1e-6)
        assert torch.allclose(to_first[w], unit[w, 1:] @ unit[w, 0], atol=1e-6)
    with pytest.raises(ValueError, match="seq_len >= 3"):
        cosine_to_first(X[:, :2])


def test_first_position_share_by_hand():
    # channel 0: position 0 holds 3² of 3² + 1² + 1² + ... ; channel 1: an ordinary position's 1/seq
    X = torch.tensor([[[3.0, 1.0], [1.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]]])  # [2, 3, 2]
    share = first_position_share(X)
    assert torch.allclose(share, torch.tensor([9.0 / 12.0, 1.0 / 3.0]))
    assert torch.allclose(first_position_share(X, per_channel=False), torch.tensor((9.0 + 2.0) / (12.0 + 6.0)))


def test_quantization_order_and_energy_in_last_columns():
    H = torch.diag(torch.tensor([1.0, 5.0, 3.0, 5.0]))
    assert quantization_order(H, act_order=False).tolist() == [0, 1, 2, 3]
    assert quantization_order(H, act_order=True).tolist() == [1, 3, 2, 0]  # ties keep column order
    x = torch.tensor([[1.0, 0.0, 2.0, 1.0], [1.0, 0.0, 0.0, 1.0]])  # squares per column: 2, 0, 4, 2 (of 8)
    assert energy_in_last_columns(x, quantization_order(H, False), 0.25) == pytest.approx(2 / 8)  # column 3
    assert energy_in_last_columns(x, quantization_order(H, True), 0.5) == pytest.approx(6 / 8)  # columns 2, 0
    assert energy_in_last_columns(x[0], torch.arange(4), 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fraction"):
        energy_in_last_columns(x, torch.arange(4), 0.0)


def test_errors_by_position_weigh_back_to_the_whole_windows_error(tiny_llama):
    model = tiny_llama()
    ids = random_ids(3, 9)
    name = "model.layers.0.self_attn.v_proj"
    H_first, H_rest = hessians_by_position(model, ids, batch_size=3)[name]
    whole = HessianAccumulator(H_first.shape[0])
    with torch.no_grad(), record_inputs({name: model.get_submodule(name)}, lambda n, x: whole.add(x)):
        model(input_ids=ids, use_cache=False)
    W = model.get_submodule(name).weight.detach()
    W_hat = W + 0.01 * torch.randn(W.shape, generator=torch.Generator().manual_seed(1))
    errors = errors_by_position(W, {"noisy": W_hat, "exact": W}, H_first, H_rest)
    assert errors["exact"] == (0.0, 0.0)
    first, rest = errors["noisy"]
    assert first > 0 and rest > 0
    # position 0 is 1 token in 9 of every window, the rest 8 in 9
    assert (first + 8 * rest) / 9 == pytest.approx(output_error(W, W_hat, whole.H), rel=1e-5)
