"""The one entry point: dispatch by config type, the shared checks, and ``only``."""
from dataclasses import dataclass

import pytest
import torch

from course_lib import awq, gptq, llm_int8, methods, nf4, rtn, smoothquant, w8a8
from course_lib.quant_linear import QuantLinear
from support import random_ids


calib = random_ids


def layer_types(model) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules() if "proj" in name or name == "lm_head"}


@pytest.mark.parametrize("config, layer", [
    (rtn.RTNConfig(4, 32), "QuantLinear"),
    (gptq.GPTQConfig(4, 32, batch_size=2), "QuantLinear"),
    (awq.AWQConfig(4, 32, n_grid=3, clip_grid=3), "QuantLinear"),
    (w8a8.W8A8Config(), "W8A8Linear"),
    (smoothquant.SmoothQuantConfig(), "W8A8Linear"),
    (llm_int8.LLMInt8Config(), "LLMInt8Linear"),
    (nf4.NF4Config(block_size=32), "NF4Linear"),
])
def test_quantize_dispatches_on_the_config_type_and_only_selects(tiny_llama, config, layer):
    model = tiny_llama()
    methods.quantize(model, config, calib=calib(), progress=False, only=("mlp",))
    types = layer_types(model)
    assert {t for name, t in types.items() if ".mlp." in name} == {layer}
    assert {t for name, t in types.items() if ".mlp." not in name} == {"Linear"}  # attention and lm_head kept


def test_only_takes_a_predicate_and_is_combined_with_skip(tiny_llama):
    model = tiny_llama()
    rtn.quantize_model(model, rtn.RTNConfig(4, 32, skip=("layers.1",)), progress=False,
                       only=lambda name: name.endswith("down_proj"))
    quantized = sorted(name for name, m in model.named_modules() if isinstance(m, QuantLinear))
    assert quantized == ["model.layers.0.mlp.down_proj"]


def test_the_shared_checks_run_before_anything_changes(tiny_llama):
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    @dataclass(frozen=True)
    class Unknown:
        skip: tuple = ()

    with pytest.raises(ValueError, match="No method is registered for Unknown"):
        methods.quantize(model, Unknown())
    with pytest.raises(ValueError, match="No linear layer is selected"):
        methods.quantize(model, rtn.RTNConfig(4, 32), only=("no_such_layer",))
    with pytest.raises(ValueError, match="does not divide"):
        methods.quantize(model, gptq.GPTQConfig(4, 48), calib=calib())
    with pytest.raises(ValueError, match="calib=None"):
        methods.quantize(model, gptq.GPTQConfig(4, 32))
    with pytest.raises(ValueError, match="only must be a tuple"):
        methods.quantize(model, rtn.RTNConfig(4, 32), only="mlp")
    with pytest.raises(ValueError, match="config must be a GPTQConfig, got RTNConfig"):
        gptq.quantize_model(model, rtn.RTNConfig(4, 32), calib=calib())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, QuantLinear) for m in model.modules())


def test_the_per_method_function_is_the_entry_point(tiny_llama):
    a, b = tiny_llama(), tiny_llama()
    gptq.quantize_model(a, gptq.GPTQConfig(3, 32, batch_size=2), calib=calib(), progress=False)
    methods.quantize(b, gptq.GPTQConfig(3, 32, batch_size=2), calib=calib(), progress=False)
    ids = calib(2, 8, seed=3)
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)


def test_every_method_module_registers_its_config():
    assert set(methods.registered()) >= {"RTNConfig", "GPTQConfig", "AWQConfig", "W8A8Config", "SmoothQuantConfig",
                                         "LLMInt8Config", "NF4Config"}
