"""The one scale fold (AWQ and SmoothQuant): the float model is unchanged, into norms and linears alike."""
import copy

import pytest
import torch
from torch import nn

from course_lib.fold import fold_group, fold_scales
from course_lib.wiring import decoder_blocks, scale_groups, wiring_for
from support import random_ids


def random_scales(block, groups, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.exp(0.5 * torch.randn(block.get_submodule(grp.linears[0]).in_features, generator=g))
            for grp in groups]


ids = random_ids


def test_folding_scales_leaves_the_real_models_logits_unchanged(model_and_tokenizer):
    model = model_and_tokenizer[0]
    assert model.dtype == torch.float32
    folded = copy.deepcopy(model)
    wiring = wiring_for(folded)
    for i, block in enumerate(decoder_blocks(folded)):
        groups = scale_groups(block, wiring)
        for group, s in zip(groups, random_scales(block, groups, i)):
            fold_group(block, group, s)
    batch = ids(1, 24, vocab=model.config.vocab_size)
    with torch.no_grad():
        diff = (folded(batch).logits - model(batch).logits).abs().max()
    assert 0 < diff < 1e-4  # the weights changed, the function did not (up to float rounding)


def test_folding_into_a_linear_with_bias_is_exact(tiny_llama):
    model = tiny_llama(num_key_value_heads=4, attention_bias=True)  # v_proj -> o_proj is foldable
    folded = copy.deepcopy(model)
    block = decoder_blocks(folded)[0]
    groups = scale_groups(block, wiring_for(folded))
    assert [g.prev_kind for g in groups] == ["norm", "linear", "norm", "linear"]
    for group, s in zip(groups, random_scales(block, groups, 0)):
        fold_group(block, group, s)
    with torch.no_grad():
        assert (folded(ids()).logits - model(ids()).logits).abs().max() < 1e-5


def test_each_weight_is_rounded_once_from_the_exact_product():
    g = torch.Generator().manual_seed(0)
    norm_weight = torch.randn(8, generator=g)
    producer, consumer = nn.LayerNorm(8), nn.Linear(8, 3)
    with torch.no_grad():
        producer.weight.copy_(norm_weight)
        producer.bias.copy_(torch.randn(8, generator=g))
    producer, consumer = producer.half(), consumer.half()
    before_w, before_b, before_c = producer.weight.clone(), producer.bias.clone(), consumer.weight.clone()
    s = torch.rand(8, generator=g) + 0.5
    fold_scales(producer, [consumer], s)
    assert torch.equal(producer.weight, (before_w.double() / s.double()).half())
    assert torch.equal(producer.bias, (before_b.double() / s.double()).half())
    assert torch.equal(consumer.weight, (before_c.double() * s.double()[None, :]).half())


def test_float32_fold_equals_the_plain_float32_ops():
    g = torch.Generator().manual_seed(1)
    producer, consumer = nn.Linear(5, 8), nn.Linear(8, 4)
    before_w, before_b, before_c = producer.weight.clone(), producer.bias.clone(), consumer.weight.clone()
    s = torch.rand(8, generator=g) + 0.5
    fold_scales(producer, [consumer], s)
    assert torch.equal(producer.weight, before_w / s[:, None])
    assert torch.equal(producer.bias, before_b / s)
    assert torch.equal(consumer.weight, before_c * s[None, :])


def test_a_producer_without_a_weight_vector_is_refused():
    with pytest.raises(ValueError, match="producer must be an nn.Linear or a norm"):
        fold_scales(nn.ReLU(), [nn.Linear(4, 2)], torch.ones(4))
