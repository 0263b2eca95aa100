"""run_log counts what a run cost, so notebooks print their own counts."""
import re

import torch
from torch import nn

from course_lib import run_log, swap


def test_counts_steps_and_tokens_and_resets():
    run_log.reset()
    assert run_log.counts() == {} and "no counted steps" in run_log.summary()
    run_log.record("perplexity evaluation", 2048)
    run_log.record("perplexity evaluation", 1024)
    run_log.record("model quantization")
    assert run_log.counts() == {"perplexity evaluation": 2, "model quantization": 1}
    line = run_log.summary()
    assert "1 model quantization," in line and "2 perplexity evaluations (3,072 tokens)" in line
    assert re.search(r"\d+ min \d+ s since course_lib was first imported", line)
    run_log.reset()
    assert run_log.counts() == {} and run_log.elapsed() < 5


def test_map_linear_weights_counts_one_quantization_per_model():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    run_log.reset()
    swap.map_linear_weights(model, lambda W: torch.round(W), skip=(), progress=False)
    assert run_log.counts() == {"model quantization": 1}


def test_perplexity_records_its_tokens(model_and_tokenizer):
    from course_lib import evaluate

    model, tokenizer = model_and_tokenizer
    run_log.reset()
    evaluate.perplexity(model, tokenizer, n_tokens=1024, progress=False)
    assert run_log.counts() == {"perplexity evaluation": 1} and "(1,024 tokens)" in run_log.summary()
