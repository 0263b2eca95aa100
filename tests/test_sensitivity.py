"""Sensitivity scan (one unit quantized at a time, the model restored) and the greedy bit allocation."""
import copy

import pytest
import torch
import torch.nn.functional as F

from course_lib import memory
from course_lib.quant_linear import QuantLinear
from course_lib.sensitivity import (
    FLOAT_BITS, allocate_bits, allocate_bits_exhaustive, allocate_bits_optimal, apply_allocation, damage_table, linear_units,
    quantized_weights, rtn_quantizer, sensitivity_of_unit_reference, sensitivity_scan, tied_linears, unit_nbytes,
)
from support import random_ids

IDS = random_ids(2, 16)


def loss(model) -> float:
    """A cheap stand-in for perplexity: next-token loss on two short sequences."""
    with torch.no_grad():
        logits = model(IDS).logits
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), IDS[:, 1:].reshape(-1)))


def test_units_by_type_block_and_layer(tiny_llama):
    model = tiny_llama()
    by_type = linear_units(model, "type")
    assert sorted(by_type) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert by_type["down_proj"] == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    by_block = linear_units(model, "block")
    assert list(by_block) == ["block 0", "block 1"] and len(by_block["block 1"]) == 7
    assert len(linear_units(model, "layer")) == 14
    assert "lm_head" in linear_units(model, "layer", skip=())
    with pytest.raises(ValueError, match="by must be one of"):
        linear_units(model, "head")


def test_scan_restores_the_model_and_matches_the_reference(tiny_llama):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    units = linear_units(model, "type")
    quantizer = rtn_quantizer(2, 16, False)
    scan = sensitivity_scan(model, units, quantizer, loss, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # bit for bit
    assert scan.baseline == loss(model)
    assert set(scan.delta) == set(units)
    assert scan.metric["down_proj"] == pytest.approx(
        sensitivity_of_unit_reference(model, units["down_proj"], quantizer, loss), rel=1e-6)
    assert any(d != 0 for d in scan.delta.values())
    assert scan.ranked()[0][1] == max(scan.delta.values())


def test_weights_come_back_even_when_evaluation_fails(tiny_llama):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())

    def broken(model):
        raise RuntimeError("evaluation crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        with quantized_weights(model, ["model.layers.0.mlp.up_proj"], rtn_quantizer(2, 16)):
            assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, before["model.layers.0.mlp.up_proj.weight"])
            broken(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="shaped like"):
        with quantized_weights(model, ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"],
                               lambda W: W[:1]):
            pass
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_greedy_allocation_respects_the_budget_and_finds_the_optimum_here():
    costs = {"a": {2: 10, 4: 20, 8: 40}, "b": {2: 10, 4: 20, 8: 40}, "c": {2: 30, 4: 60, 8: 120}}
    damage = {"a": {2: 9.0, 4: 1.0, 8: 0.0}, "b": {2: 0.5, 4: 0.2, 8: 0.0}, "c": {2: 4.0, 4: 0.5, 8: 0.0}}
    for budget in (50, 70, 100, 140, 200):
        greedy = allocate_bits(costs, damage, budget)
        best = allocate_bits_exhaustive(costs, damage, budget)
        assert sum(costs[u][b] for u, b in greedy.items()) <= budget
        assert sum(damage[u][b] for u, b in greedy.items()) == pytest.approx(sum(damage[u][b] for u, b in best.items()))
    assert allocate_bits(costs, damage, 70) == {"a": 4, "b": 4, "c": 2}  # the sensitive small unit first
    assert allocate_bits(costs, damage, 1e9) == {"a": 8, "b": 8, "c": 8}
    with pytest.raises(ValueError, match="below the smallest possible size, 50"):
        allocate_bits(costs, damage, 49)
    with pytest.raises(ValueError, match="same units"):
        allocate_bits(costs, {"a": damage["a"]}, 100)


def test_greedy_can_strand_budget_the_optimal_allocation_does_not():
    # An early, efficient but small upgrade (s: 4 -> 5) leaves too little for the big unit's 3 -> 4.
    costs = {"s": {3: 3, 4: 4, 5: 5}, "big": {3: 30, 4: 40}}
    damage = {"s": {3: 1.0, 4: 0.2, 5: 0.0}, "big": {3: 2.0, 4: 0.5}}
    budget = 44  # exactly both units at 4 bits
    greedy = allocate_bits(costs, damage, budget)
    assert greedy == {"s": 5, "big": 3}  # 2.0 damage: the greedy path
    optimal = allocate_bits_optimal(costs, damage, budget)
    assert optimal == allocate_bits_exhaustive(costs, damage, budget) == {"s": 4, "big": 4}  # 0.7 damage
    g = torch.Generator().manual_seed(1)
    for trial in range(20):  # random problems: the frontier search is always exact
        units = [f"u{i}" for i in range(4)]
        costs = {u: {b: float(b * (1 + int(torch.randint(1, 9, (), generator=g)))) for b in (2, 3, 4, 8)} for u in units}
        damage = {u: {b: float(torch.rand((), generator=g)) / b for b in (2, 3, 4, 8)} for u in units}
        budget = float(sum(costs[u][4] for u in units))
        optimal, best = allocate_bits_optimal(costs, damage, budget), allocate_bits_exhaustive(costs, damage, budget)
        total = lambda a: sum(damage[u][b] for u, b in a.items())
        assert total(optimal) == pytest.approx(total(best)) and sum(costs[u][b] for u, b in optimal.items()) <= budget


def test_unit_bytes_equal_the_applied_layers(tiny_llama):
    model = tiny_llama()
    units = linear_units(model, "type")
    allocation = {u: 4 for u in units} | {"down_proj": 8, "q_proj": 3, "k_proj": FLOAT_BITS}
    expected = {u: unit_nbytes(model, names, allocation[u], 16, False) for u, names in units.items()}
    assert expected["k_proj"] == 2 * 2 * 64 * 32  # two [32, 64] weights in FP16
    quantized = apply_allocation(copy.deepcopy(model), units, allocation, group_size=16, progress=False)
    for u, names in units.items():
        layers = [quantized.get_submodule(n) for n in names]
        if allocation[u] == FLOAT_BITS:
            assert not any(isinstance(m, QuantLinear) for m in layers)
            continue
        assert all(isinstance(m, QuantLinear) and m.n_bits == allocation[u] for m in layers)
        assert sum(memory.memory_footprint(m) for m in layers) == expected[u]
    with pytest.raises(ValueError, match="No width allocated"):
        apply_allocation(model, units, {"q_proj": 4})


def test_damage_table_drives_an_allocation(tiny_llama):
    model = tiny_llama()
    units = linear_units(model, "block")
    damage = damage_table(model, units, (2, 4, FLOAT_BITS), loss, group_size=16, progress=False)
    assert all(damage[u][FLOAT_BITS] == 0.0 for u in units) and set(damage["block 0"]) == {2, 4, FLOAT_BITS}
    costs = {u: {b: unit_nbytes(model, names, b, 16) for b in (2, 4, FLOAT_BITS)} for u, names in units.items()}
    uniform_4 = sum(costs[u][4] for u in units)
    allocation = allocate_bits(costs, damage, uniform_4)
    assert sum(costs[u][b] for u, b in allocation.items()) <= uniform_4


def test_tied_head_is_found(tiny_llama, model_and_tokenizer):
    real, _ = model_and_tokenizer
    assert tied_linears(real) == {"lm_head": ["model.embed_tokens.weight"]}
    assert tied_linears(tiny_llama(tie_word_embeddings=False)) == {}
