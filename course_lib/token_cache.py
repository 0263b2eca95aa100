"""Corpus splits as 🤗 ``datasets``, tokenized once per machine by a cached ``Dataset.map``.

Tokenizing a split takes up to a second on a laptop core, and the course asks for the same
streams again and again (every perplexity, every calibration set, every notebook, every test
process). So a split is kept as two Arrow files under ``<cache_dir()>/datasets-v1/``
(``$QUANT_COURSE_CACHE``, else ``~/.cache/llm-quant-course``), next to the converted model:

* its documents (columns ``title``, ``text``), written by ``Dataset.from_generator``, whose
  fingerprint is a hash of every text (a changed corpus is a new dataset), and
* its tokens (column ``input_ids`` added), written by ``Dataset.map(batched=True)``, whose
  fingerprint hashes the documents' fingerprint, the map function and its arguments: the
  tokenizer's complete state (vocabulary, merges, normalizer, added tokens; ``datasets``
  pickles it with dill, and the hash is the same in every process) and the
  ``transformers``/``tokenizers`` versions. The map function is hashed by its name, not its
  code: change what it computes (it passes ``add_special_tokens=False``) and bump ``FORMAT``.

Nothing is trusted by age or name: another text or another tokenizer gives another fingerprint,
so another file. ``datasets`` writes each file to a temporary name and renames it into place, so
an interrupted run never leaves half a file; a file that does not read as Arrow is rebuilt. It
checks no checksum, so a file altered after it was written is trusted. A cache folder that
cannot be written is not an error: the split is tokenized in memory and a warning says why.

Only Hugging Face *fast* tokenizers are cached; any other callable is tokenized on every call.
This replaced a hand-written binary cache (commit 5a732c8), measured side by side by
``benchmarks/tokenize_cache.py`` on a 2-core CPU: the same ids for every split; cold the same
(4.0 s against 4.1 s for all six splits); a warm split costs ~40 ms beyond reading its documents
against ~3 ms, plus ~0.5 s once per process to import ``datasets``. Both tokenize again after a
changed text or a new tokenizer; only this one after a tokenizer changed in place (``add_tokens``
of a token already in the vocabulary, a replaced normalizer), which the old memo served stale.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

FORMAT = 1  # bump when what is stored changes: the old folder is then never read again
FOLDER = f"datasets-v{FORMAT}"
ADD_SPECIAL_TOKENS = False


def cache_folder() -> Path:
    """``<cache_dir()>/datasets-v1``: where the corpus datasets and their tokens are kept."""
    from .models import cache_dir  # models imports torch; keep data.py's import light

    return cache_dir() / FOLDER


def is_cacheable(tokenizer) -> bool:
    """True for a Hugging Face fast tokenizer, the tokenizers whose fingerprint was measured stable."""
    from transformers import PreTrainedTokenizerBase

    return isinstance(tokenizer, PreTrainedTokenizerBase) and getattr(tokenizer, "backend_tokenizer", None) is not None


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without BOS/EOS."""
    return tokenizer(list(texts), add_special_tokens=ADD_SPECIAL_TOKENS)["input_ids"]


# ---------------------------------------------------------------- the datasets


def _features(with_ids: bool):
    import datasets

    columns = {"title": datasets.Value("string"), "text": datasets.Value("string")}
    if with_ids:
        columns["input_ids"] = getattr(datasets, "List", datasets.Sequence)(datasets.Value("int32"))  # List: 4.0+
    return datasets.Features(columns)


def _rows(titles: tuple, texts: tuple):
    """The generator behind ``Dataset.from_generator``: one row per document."""
    for title, text in zip(titles, texts):
        yield {"title": title, "text": text}


def _encode_batch(batch: dict, tokenizer, libraries: tuple) -> dict:
    """The map function. ``libraries`` (transformers and tokenizers versions) is unused here:
    it is an argument so that it is part of the map's fingerprint."""
    return {"input_ids": encode(tokenizer, batch["text"])}


def _unwritable(err: OSError) -> None:
    warnings.warn(f"could not keep the corpus dataset under {cache_folder()} ({err}); the course still works but "
                  "tokenizes this split again next time. Point $QUANT_COURSE_CACHE at a writable folder to keep it.",
                  stacklevel=4)


def _damaged(err: Exception, what: str) -> None:
    warnings.warn(f"a cached {what} under {cache_folder()} does not read ({err}); building it again", stacklevel=4)


def text_dataset(docs: list[dict], split: str):
    """The documents as a ``datasets.Dataset`` (``title``, ``text``), kept in the cache folder."""
    import datasets
    import pyarrow as pa

    titles, texts = tuple(d["title"] for d in docs), tuple(d["text"] for d in docs)

    def build():
        # Tuples, not lists: from_generator would shard list arguments, one generator call per item.
        return datasets.Dataset.from_generator(_rows, features=_features(False), cache_dir=str(cache_folder()),
                                               gen_kwargs={"titles": titles, "texts": texts},
                                               split=datasets.NamedSplit(split))
    try:
        try:
            return build()
        except (pa.ArrowException, ValueError) as err:  # a damaged Arrow file or dataset_info.json (checked
            _damaged(err, "corpus dataset")                 # before OSError: pyarrow's ArrowIOError is one)
            shutil.rmtree(cache_folder(), ignore_errors=True)  # the file's folder is unknown here; all of it is a cache
            return build()
    except OSError as err:
        _unwritable(err)
        return datasets.Dataset.from_dict({"title": list(titles), "text": list(texts)}, features=_features(False),
                                          split=datasets.NamedSplit(split))


def tokenized(dataset, tokenizer, desc: str = "Tokenizing"):
    """``dataset`` with an ``input_ids`` column: ``Dataset.map`` writes it once, then reads it back."""
    import pyarrow as pa
    import tokenizers
    import transformers

    options = dict(batched=True, features=_features(True), desc=desc,
                   fn_kwargs={"tokenizer": tokenizer, "libraries": (transformers.__version__, tokenizers.__version__)})
    try:
        try:
            return dataset.map(_encode_batch, **options)
        except pa.ArrowException as err:
            _damaged(err, "token file")
            return dataset.map(_encode_batch, load_from_cache_file=False, **options)  # rewrites the same file
    except OSError as err:
        _unwritable(err)
        return dataset.map(_encode_batch, keep_in_memory=True, **options)


def token_stream(dataset, separator: list[int]):
    """The ``input_ids`` of every row joined by ``separator``, as one new 1-D LongTensor."""
    import numpy as np
    import pyarrow.compute as pc
    import torch

    lists = dataset.data.column("input_ids").combine_chunks()  # ListArray [n_docs], ragged
    lengths = pc.list_value_length(lists).to_numpy()  # [n_docs]
    flat = pc.list_flatten(lists).to_numpy()  # [sum(lengths)], int32
    stream = np.empty(int(lengths.sum()) + len(separator) * max(len(lengths) - 1, 0), dtype=np.int64)
    position = start = 0
    for i, length in enumerate(lengths):
        if i > 0:
            stream[position:position + len(separator)] = separator
            position += len(separator)
        stream[position:position + length] = flat[start:start + length]
        position, start = position + length, start + length
    return torch.from_numpy(stream)
