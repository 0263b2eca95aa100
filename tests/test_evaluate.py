"""The pinned perplexity protocol."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import data, evaluate


def test_perplexity_is_repeatable_and_plausible(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    first = evaluate.perplexity(model, tokenizer, "wiki", n_tokens=1024, progress=False)
    second = evaluate.perplexity(model, tokenizer, "wiki", n_tokens=1024, progress=False)
    assert abs(first - second) < 1e-4
    assert 10 < first < 40  # DESIGN.md measured 22.2 on 32k wiki tokens


def test_perplexity_matches_a_direct_computation(model_and_tokenizer):
    """exp(mean NLL) over non-overlapping windows, recomputed here without the library's loop."""
    model, tokenizer = model_and_tokenizer
    window = 256
    ids = data.token_ids(tokenizer, "code", "eval", max_tokens=2 * window).view(2, window)
    with torch.no_grad():
        logits = model(ids).logits  # [2, window, vocab]
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    expected = math.exp(nll.item())
    got = evaluate.perplexity(model, tokenizer, "code", n_tokens=2 * window + 100, window=window, progress=False)
    assert got == pytest.approx(expected, rel=1e-4)  # the trailing partial window is dropped


def test_perplexity_restores_training_mode(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()
    try:
        evaluate.perplexity(model, tokenizer, "wiki", n_tokens=512, progress=False)
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize("kwargs, match", [
    ({"n_tokens": 100}, "at least one window"),
    ({"window": 1}, "window must be"),
    ({"corpus": "poetry"}, "wiki"),
])
@pytest.mark.parametrize("measure", [evaluate.perplexity, evaluate.token_nll])
def test_bad_arguments_are_explained(model_and_tokenizer, kwargs, match, measure):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match=match):
        measure(model, tokenizer, **{"n_tokens": 512, **kwargs})


def test_token_nll_is_the_protocol_per_prediction(model_and_tokenizer):
    """exp(mean) of the per-prediction NLL is the protocol's perplexity; each run is counted once."""
    from course_lib import run_log

    model, tokenizer = model_and_tokenizer
    before = run_log.counts().get("perplexity evaluation", 0)
    nll = evaluate.token_nll(model, tokenizer, "code", n_tokens=2 * 256 + 100, window=256)
    assert nll.shape == (2, 255) and nll.dtype == torch.float64 and (nll > 0).all()
    assert run_log.counts()["perplexity evaluation"] == before + 1
    ppl = evaluate.perplexity(model, tokenizer, "code", n_tokens=2 * 256 + 100, window=256, progress=False)
    assert math.exp(float(nll.mean())) == pytest.approx(ppl, rel=1e-5)
    # a different window is a different set of predictions, not a reshaped one
    assert evaluate.token_nll(model, tokenizer, "code", n_tokens=512, window=512).shape == (1, 511)


def test_the_printed_protocol_is_the_one_perplexity_runs():
    """PROTOCOL is prose for people: its numbers must be the ones the code uses."""
    import inspect

    from course_lib.budget import BUDGETS

    protocol, text = evaluate.PROTOCOL, evaluate.describe_protocol()
    window = inspect.signature(evaluate.perplexity).parameters["window"].default
    assert protocol["window"] == protocol["stride"] == window
    assert protocol["predictions_per_window"] == window - 1
    for budget in BUDGETS.values():
        assert f"{budget.name} {budget.eval_tokens}" in protocol["tokens"], budget
    assert all(f"{key:>22}: {value}" in text.splitlines() for key, value in protocol.items())
