"""GPTQ: the per-layer algorithm against RTN and a slow reference, the Hessian, the block-sequential driver."""
import copy

import pytest
import torch

from course_lib.blockwise import capture_block_inputs, run_block
from course_lib.gptq import GPTQConfig, gptq_quantize, gptq_quantize_reference, quantize_model
from course_lib.hessian import hessian_reference, inverse_hessian_factor, output_error
from course_lib.hooks import record_inputs
from course_lib.input_stats import HessianAccumulator
from course_lib.probes import hessians_by_position
from course_lib.quant_io import load_quantized, save_quantized
from course_lib.quant_linear import QuantLinear
from course_lib.quantize import dequantize, quantize, quantize_with
from support import random_ids


def correlated_layer(out_features=48, in_features=192, n_tokens=2048, seed=0):
    """W [out, in] and H from inputs with correlated features and a few large channels."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(in_features) + 2 * torch.randn(in_features, in_features, generator=g) / in_features**0.5
    X = torch.randn(n_tokens, in_features, generator=g) @ mix  # [tokens, in], correlated
    X[:, :4] *= 8  # a few outlier channels, as in real activations
    W = torch.randn(out_features, in_features, generator=g)
    return W, hessian_reference(X).float()


@pytest.mark.parametrize("n_bits", [4, 3])
@pytest.mark.parametrize("group_size", [64, "channel"])
def test_gptq_output_error_is_clearly_below_rtn(n_bits, group_size):
    W, H = correlated_layer()
    W_rtn = quantize(W, n_bits, group_size, symmetric=False, scale_dtype=torch.float16).dequantize()
    W_gptq = gptq_quantize(W, H, n_bits, group_size).W_hat
    assert output_error(W, W_gptq, H) < 0.5 * output_error(W, W_rtn, H)


@pytest.mark.parametrize("group_size,block_size", [(64, 128), (96, 32), ("channel", 50), (48, 48)])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_fast_path_matches_the_slow_reference(group_size, block_size, act_order, symmetric):
    W, H = correlated_layer(out_features=24, seed=1)
    fast = gptq_quantize(W.double(), H.double(), 4, group_size, symmetric, block_size=block_size, act_order=act_order)
    slow = gptq_quantize_reference(W.double(), H.double(), 4, group_size, symmetric, act_order=act_order)
    assert torch.allclose(fast.W_hat, slow.W_hat, atol=1e-5, rtol=0)
    assert torch.equal(fast.g_idx, slow.g_idx)
    # the float32 path lands on the same codes for almost every weight
    fast32 = gptq_quantize(W, H, 4, group_size, symmetric, block_size=block_size, act_order=act_order)
    assert (fast32.q != slow.q).float().mean() < 0.01


def block_start_gptq(W, H, n_bits, group_size, block_size, damp_percent=0.01):
    """The authors' loop, written plainly in float64: lazy batches, and each group's grid fitted on W as the
    block began (W1 is a copy; W itself gets the block's updates only when the block is done)."""
    from course_lib.quantize import GridSpec

    grid = GridSpec(n_bits, group_size, False, torch.float16)
    W = W.double().clone()
    U = inverse_hessian_factor(H.double(), damp_percent)[0]
    W_hat = torch.zeros_like(W)
    for i1 in range(0, W.shape[1], block_size):
        i2 = min(i1 + block_size, W.shape[1])
        W1, Err1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1, dtype=W.dtype)
        for i in range(i2 - i1):
            j = i1 + i
            if j % group_size == 0:
                scale, zero_point = grid.fit(W[:, j:j + group_size])  # W, not W1: the block's start
            w_hat = dequantize(quantize_with(W1[:, i:i + 1], scale, zero_point, n_bits), scale, zero_point).double()
            W_hat[:, j:j + 1] = w_hat
            err = (W1[:, i:i + 1] - w_hat) / U[j, j]
            W1[:, i:] -= err * U[j:j + 1, j:i2]
            Err1[:, i:i + 1] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return W_hat


@pytest.mark.parametrize("group_size,block_size", [(32, 128), (32, 64), (64, 32), (48, 96)])
def test_block_start_grids_are_the_authors_loop(group_size, block_size):
    """grid_from="block_start" is the plain loop above (groups inside blocks, and groups longer than a block)."""
    W, H = correlated_layer(out_features=24, seed=5)
    fast = gptq_quantize(W.double(), H.double(), 3, group_size, block_size=block_size, grid_from="block_start")
    assert torch.allclose(fast.W_hat.double(), block_start_gptq(W, H, 3, group_size, block_size), atol=1e-5, rtol=0)


def test_only_block_start_grids_depend_on_the_block_size():
    W, H = correlated_layer(out_features=24, seed=6)
    updated = [gptq_quantize(W, H, 3, 32, block_size=b).W_hat for b in (32, 64, 128)]
    start = [gptq_quantize(W, H, 3, 32, block_size=b, grid_from="block_start").W_hat for b in (32, 64, 128)]
    assert all(torch.equal(updated[0], other) for other in updated[1:])
    assert torch.equal(start[0], updated[0])  # every group starts a block: nothing is updated yet
    assert not torch.equal(start[1], updated[1]) and not torch.equal(start[1], start[2])
    with pytest.raises(ValueError, match="grid_from"):
        gptq_quantize(W, H, 3, 32, grid_from="start")
    with pytest.raises(ValueError, match="grid_from"):
        GPTQConfig(grid_from="before")


@pytest.mark.parametrize("group_size,symmetric", [(64, False), ("channel", False), (32, True)])
def test_identity_hessian_gives_exactly_rtn(group_size, symmetric):
    W, _ = correlated_layer(seed=2)
    rtn = quantize(W, 3, group_size, symmetric, scale_dtype=torch.float16)
    result = gptq_quantize(W, torch.eye(W.shape[1]), 3, group_size, symmetric)
    assert torch.equal(result.q, rtn.q)
    assert torch.equal(result.W_hat, rtn.dequantize())


def test_act_order_permutes_groups_and_quant_linear_decodes_them():
    W, H = correlated_layer(seed=3)
    result = gptq_quantize(W, H, 4, 64, act_order=True)
    default = torch.arange(W.shape[1]) // 64
    assert not torch.equal(result.g_idx.long(), default)  # groups follow diag(H), not column order
    assert torch.equal(torch.bincount(result.g_idx.long()), torch.full((3,), 64))
    layer = result.to_quant_linear()
    assert torch.equal(layer.dequantize_weight(), result.W_hat)


def test_act_order_with_groups_round_trips_through_save_and_load(tmp_path):
    W, H = correlated_layer(seed=4)
    model = torch.nn.Sequential(torch.nn.Linear(192, 48))
    result = gptq_quantize(W, H, 3, 64, act_order=True)
    model[0] = result.to_quant_linear(bias=torch.randn(48))
    path = save_quantized(model, tmp_path / "gptq.safetensors")
    skeleton = torch.nn.Sequential(torch.nn.Linear(192, 48))
    reloaded = load_quantized(skeleton, path)
    x = torch.randn(5, 192)
    assert torch.equal(reloaded[0].g_idx, model[0].g_idx)
    assert torch.equal(reloaded(x), model(x))


def test_dead_inputs_get_zero_weights():
    W, H = correlated_layer(seed=5)
    H[:, 7] = 0
    H[7, :] = 0
    result = gptq_quantize(W, H, 4, 64)
    assert torch.all(result.W_hat[:, 7] == 0)
    assert torch.isfinite(result.W_hat).all()


def test_hessian_accumulator_matches_the_reference_over_chunks():
    X = torch.randn(3, 40, 16)
    acc = HessianAccumulator(16)
    for chunk in X:
        acc.add(chunk)
    assert acc.n_tokens == 120
    assert torch.allclose(acc.H.double(), hessian_reference(X), rtol=1e-5, atol=1e-5)
    W, W_hat = torch.randn(4, 16), torch.randn(4, 16)
    direct = ((X.reshape(-1, 16) @ (W - W_hat).T) ** 2).sum(dim=1).mean()
    assert output_error(W, W_hat, acc.H) == pytest.approx(float(direct), rel=1e-4)
    with pytest.raises(ValueError, match="No activations"):
        HessianAccumulator(8).H
    with pytest.raises(ValueError, match="16 features"):
        HessianAccumulator(8).add(X)


def test_hessians_by_position_split_the_layers_hessian_into_first_and_rest(tiny_llama):
    model = tiny_llama()
    ids = random_ids(3, 9)
    split = hessians_by_position(model, ids, batch_size=2)
    assert "lm_head" not in split and len(split) == 2 * 7
    name = "model.layers.1.mlp.down_proj"
    whole = HessianAccumulator(128)
    with torch.no_grad(), record_inputs({name: model.get_submodule(name)}, lambda n, x: whole.add(x)):
        model(input_ids=ids, use_cache=False)
    H_first, H_rest = split[name]
    assert torch.allclose((H_first * 3 + H_rest * 24) / 27, whole.H, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        hessians_by_position(model, ids[:, :1])


def singular_hessian(n=16):
    H = torch.eye(n)
    H[:2, :2] = 4.0  # inputs 0 and 1 are always equal: [[4, 4], [4, 4]] has a zero pivot
    return H


def test_singular_hessian_without_damping_fails_with_advice():
    with pytest.raises(ValueError, match="damp_percent"):
        inverse_hessian_factor(singular_hessian(), damp_percent=0.0, retry=False, name="toy")
    with pytest.raises(ValueError, match="toy.*singular"):
        gptq_quantize(torch.randn(4, 16), singular_hessian(), 4, 8, damp_percent=0.0, retry_damping=False, name="toy")


def test_singular_hessian_is_retried_with_more_damping():
    with pytest.warns(UserWarning, match="toy.*used damp_percent=0.01"):
        result = gptq_quantize(torch.randn(4, 16), singular_hessian(), 4, 8, damp_percent=0.0, name="toy")
    assert result.damp_percent == pytest.approx(0.01)
    assert torch.isfinite(result.W_hat).all()


def test_bad_group_size_and_shapes_are_refused():
    W, H = correlated_layer()
    with pytest.raises(ValueError, match="100"):
        gptq_quantize(W, H, 4, 100)
    with pytest.raises(ValueError, match="H \\[in, in\\]"):
        gptq_quantize(W, H[:10, :10], 4, 64)
    with pytest.raises(ValueError, match="damp_percent"):
        GPTQConfig(damp_percent=1.5)
    with pytest.raises(ValueError, match="block_size"):
        GPTQConfig(block_size=0)


def test_driver_refuses_empty_calibration_and_bad_groups_before_touching_the_model(tiny_llama):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(model, GPTQConfig(group_size=32), calib=None)
    with pytest.raises(ValueError, match="empty"):
        quantize_model(model, GPTQConfig(group_size=32), calib=torch.zeros(0, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="does not divide"):
        quantize_model(model, GPTQConfig(group_size=48), calib=torch.randint(0, 100, (2, 16)))
    with pytest.raises(ValueError, match="outside"):
        quantize_model(model, GPTQConfig(group_size=32, skip=()), calib=torch.randint(0, 100, (2, 16)))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def inputs_of(model, calib, module_name):
    """Every token's input to ``module_name`` when ``model`` runs on ``calib``."""
    seen = []
    with record_inputs({module_name: model.get_submodule(module_name)}, lambda name, x: seen.append(x)):
        model(input_ids=calib, use_cache=False)
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in seen])


def same_hessian(H, H_ref):
    return float((H - H_ref).abs().max()) <= 1e-4 * float(H_ref.abs().max())


@pytest.mark.parametrize("true_sequential", [False, True])
def test_each_block_is_calibrated_on_the_quantized_blocks_before_it(tiny_llama, true_sequential):
    model = tiny_llama(seed=7)
    reference = copy.deepcopy(model)
    calib = random_ids(6, 24)
    hessians = {}
    config = GPTQConfig(n_bits=3, group_size=32, batch_size=4, true_sequential=true_sequential)
    quantize_model(model, config, calib=calib, progress=False,
                   on_layer=lambda name, W, H, result: hessians.__setitem__(name, H.clone()))
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert linears == ["lm_head"]  # every block linear became a QuantLinear
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 14
    # block 1's first stage is calibrated on what the *quantized* block 0 gives it
    name = "model.layers.1.self_attn.q_proj"
    assert same_hessian(hessians[name], hessian_reference(inputs_of(model, calib, name)).float())
    assert not same_hessian(hessians[name], hessian_reference(inputs_of(reference, calib, name)).float())
    # inside a block, later stages see the quantized earlier stages only with true_sequential
    for name in ("model.layers.0.self_attn.o_proj", "model.layers.1.mlp.down_proj"):
        seen = hessian_reference(inputs_of(model, calib, name)).float()
        assert same_hessian(hessians[name], seen) == true_sequential


def test_capture_block_inputs_keeps_every_chunk(tiny_llama):
    model = tiny_llama()
    calib = torch.randint(0, 100, (5, 12))
    inputs = capture_block_inputs(model, calib, batch_size=2)
    assert [tuple(chunk.hidden.shape) for chunk in inputs] == [(2, 12, 64), (2, 12, 64), (1, 12, 64)]
    embedded = model.model.embed_tokens(calib)
    assert torch.equal(torch.cat([chunk.hidden for chunk in inputs]), embedded)
    run_block(model.model.layers[0], inputs)  # the captured kwargs are enough to run the block


def test_stacked_layers_equal_separate_calls():
    """Rows are independent given H: q, k and v are quantized in one call on their stacked weights."""
    W, H = correlated_layer(out_features=40, seed=8)
    stacked = gptq_quantize(W.double(), H.double(), 4, 64, act_order=True)
    for start, end in ((0, 16), (16, 40)):
        alone = gptq_quantize(W[start:end].double(), H.double(), 4, 64, act_order=True)
        part = stacked.rows(start, end)
        assert torch.allclose(part.W_hat, alone.W_hat, atol=1e-9)
        assert torch.equal(part.q, alone.q) and torch.equal(part.scale, alone.scale)
        assert torch.equal(part.g_idx, alone.g_idx)
