"""Architecture wiring: the data that says where blocks are and which op feeds which linears."""
import pytest
from torch import nn

from course_lib.wiring import LLAMA, WIRINGS, decoder_blocks, scale_groups, wiring_for


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
    assert {"llama", "opt"} <= set(WIRINGS)
