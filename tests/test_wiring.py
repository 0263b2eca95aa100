"""Architecture wiring: the data that says where blocks are and which op feeds which linears."""
import copy

import pytest
import torch
from torch import nn

from course_lib.fold import fold_group
from course_lib.wiring import LLAMA, WIRINGS, decoder_blocks, scale_groups, wiring_for
from support import random_ids, tiny_model


def test_default_model_wiring_names_real_modules(model_and_tokenizer):
    model, _ = model_and_tokenizer
    blocks = decoder_blocks(model)
    assert len(blocks) == model.config.num_hidden_layers
    wiring = wiring_for(model)
    assert wiring is LLAMA
    block = blocks[0]
    for group in wiring.groups:
        block.get_submodule(group.prev)
        for name in group.linears:
            assert isinstance(block.get_submodule(name), nn.Linear)
    sequential = [name for stage in wiring.sequential for name in stage]
    linears = [name for name, m in block.named_modules() if isinstance(m, nn.Linear)]
    assert sorted(sequential) == sorted(linears)


def test_gqa_value_to_output_fold_is_left_out(model_and_tokenizer):
    model, _ = model_and_tokenizer
    block = decoder_blocks(model)[0]
    assert block.self_attn.v_proj.out_features != block.self_attn.o_proj.in_features  # SmolLM2 uses GQA
    prevs = [g.prev for g in scale_groups(block, LLAMA)]
    assert "self_attn.v_proj" not in prevs
    assert prevs == ["input_layernorm", "post_attention_layernorm", "mlp.up_proj"]


def test_unknown_architecture_says_what_to_do():
    class Config:
        model_type = "mystery"

    model = nn.Linear(2, 2)
    model.config = Config()
    with pytest.raises(ValueError, match="No wiring for model_type='mystery'.*WIRINGS"):
        wiring_for(model)


@pytest.mark.parametrize("family", sorted(WIRINGS))
def test_every_wiring_matches_its_family_and_folds_exactly(family):
    """Each entry of WIRINGS, on a tiny random model of that family: the paths exist, the stages cover
    every linear of a block once, and folding a random s into every group leaves the logits unchanged."""
    model = tiny_model(family, num_key_value_heads=4) if family != "opt" else tiny_model("opt")
    wiring = wiring_for(model)
    assert wiring is WIRINGS[family]
    blocks = decoder_blocks(model)
    block = blocks[0]
    staged = [name for stage in wiring.sequential for name in stage]
    assert sorted(staged) == sorted(name for name, m in block.named_modules() if isinstance(m, nn.Linear))
    folded = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    n_groups = 0
    for folded_block in decoder_blocks(folded):
        for group in scale_groups(folded_block, wiring):
            width = folded_block.get_submodule(group.linears[0]).in_features
            fold_group(folded_block, group, torch.rand(width, generator=g) + 0.5)
            n_groups += 1
    assert n_groups == len(blocks) * len(wiring.groups)  # no GQA here: every group applies
    ids = random_ids(2, 12)
    with torch.no_grad():
        assert (folded(ids).logits - model(ids).logits).abs().max() < 1e-4
