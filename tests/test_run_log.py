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


def test_recorded_runs_name_the_cpu_and_keep_no_machine_folders(tmp_path):
    assert isinstance(run_log.cpu_name(), str) and run_log.cpu_name()
    assert run_log.portable(str(tmp_path / "results" / "run.json")) == "run.json"
    assert run_log.portable(["--json", str(tmp_path / "a.json"), "relative/b.json", 3]) == \
        ["--json", "a.json", "relative/b.json", 3]


def test_save_record_writes_json_and_nothing_without_a_path(tmp_path):
    import json

    path = tmp_path / "run.json"
    run_log.save_record(str(path), {"runs": [1, 2]})
    assert json.loads(path.read_text()) == {"runs": [1, 2]}
    run_log.save_record(None, {"runs": []})  # no file asked for: nothing written, no error
    assert list(tmp_path.iterdir()) == [path]


def test_new_record_is_the_header_of_a_recorded_run(tmp_path):
    import argparse

    out = str(tmp_path / "out.json")  # an absolute path: the record keeps only its name
    args = argparse.Namespace(json=out, seeds=[0, 1])
    record = run_log.new_record("benchmarks/x.py", ["--seeds", "0", "1", "--json", out], args,
                                "cpu", runs=[])
    assert record["command"] == "python benchmarks/x.py --seeds 0 1 --json out.json"
    assert record["args"] == {"json": "out.json", "seeds": [0, 1]} and record["gpu"] is None
    assert record["runs"] == [] and record["torch"] == torch.__version__ and record["threads"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"])
