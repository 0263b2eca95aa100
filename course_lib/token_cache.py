"""A cache of token streams: tokenize each corpus split once per machine, not once per call.

Tokenizing a whole split takes seconds on a laptop core, and the course asks for the same
streams again and again (every perplexity, every calibration set, every notebook, every test
process). :func:`data.token_ids` therefore keeps each split's full stream

* in memory, for the life of the process (a few MB per split), and
* on disk, under ``<cache_dir()>/tokens-v1/`` (``$QUANT_COURSE_CACHE``, else
  ``~/.cache/llm-quant-course``), next to the converted model.

A stream is looked up by a **key** that names everything its ids depend on: the tokenizer's
complete serialization (vocabulary, merges, normalizer, pre-tokenizer, added tokens) and class,
the ``transformers`` and ``tokenizers`` versions, the corpus and split, a SHA-256 of the
split's texts, the document separator and ``add_special_tokens=False``. Change any of them (a
new Python whose stdlib differs, another PostgreSQL, an edited article, another tokenizer) and
the key changes: the old file is simply never read again. Nothing is trusted by age or name.

Files are written to a temporary sibling and renamed into place (atomic on POSIX and Windows),
and carry their own key and a SHA-256 of their ids. A file that is truncated, corrupt, or holds
another key is ignored and rebuilt. A cache folder that cannot be written is not an error: the
stream is used and a warning says why it could not be kept.

Only tokenizers with a serializable ``backend_tokenizer`` (every Hugging Face *fast* tokenizer)
are cached; any other callable is tokenized on every call, exactly as before.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path

FORMAT = 1
FOLDER = f"tokens-v{FORMAT}"
MAGIC = b"QCTOKENS"  # 8 bytes, then a 4-byte little-endian header length, the JSON header, the ids
MEMO_SIZE = 16  # streams kept in memory (one per corpus split and tokenizer)

_memo: OrderedDict[str, object] = OrderedDict()  # key digest -> 1-D LongTensor (full split)
_fingerprints: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # tokenizer -> (n_tokens, fingerprint)


# ---------------------------------------------------------------- the key


def tokenizer_fingerprint(tokenizer) -> str | None:
    """SHA-256 of the tokenizer's complete serialization and class, or None when it has none.

    Remembered per tokenizer object (the serialization of a 49k vocabulary takes ~50 ms) and
    recomputed whenever ``len(tokenizer)`` changes (``add_tokens``).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str"):
        return None
    try:
        size = len(tokenizer)
    except TypeError:
        size = None
    try:
        known = _fingerprints.get(tokenizer)
    except TypeError:  # unhashable or not weak-referenceable: compute every time
        known = None
    if known is not None and known[0] == size:
        return known[1]
    digest = hashlib.sha256()
    digest.update(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}\n".encode())
    digest.update(backend.to_str().encode("utf-8"))
    fingerprint = digest.hexdigest()
    try:
        _fingerprints[tokenizer] = (size, fingerprint)
    except TypeError:
        pass
    return fingerprint


def texts_digest(texts: list[str]) -> str:
    """SHA-256 of a list of texts (each length-prefixed, so the split points count too)."""
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)
    return digest.hexdigest()


def stream_key(tokenizer_id: str, corpus: str, split: str, texts_sha256: str, separator: str) -> dict:
    """Everything a split's token ids depend on, as JSON-able data."""
    import tokenizers
    import transformers

    return {"format": FORMAT, "tokenizer": tokenizer_id, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "corpus": corpus, "split": split, "texts_sha256": texts_sha256,
            "separator": separator, "add_special_tokens": False}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cache_folder() -> Path:
    """``<cache_dir()>/tokens-v1``: where token streams are kept on disk."""
    from .models import cache_dir  # models imports torch; keep data.py's import light

    return cache_dir() / FOLDER


def cache_path(key: dict) -> Path:
    return cache_folder() / f"{key['corpus']}-{key['split']}-{key_digest(key)[:32]}.bin"


# ---------------------------------------------------------------- files


def _encode_file(key: dict, ids) -> bytes:
    """MAGIC, header length, JSON header (key, count, SHA-256 of the ids), ids as int32 little-endian."""
    import numpy as np

    payload = np.ascontiguousarray(ids.numpy(), dtype="<i4").tobytes()
    header = json.dumps({"key": key, "n_tokens": int(ids.numel()),
                         "ids_sha256": hashlib.sha256(payload).hexdigest()}, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(header)) + header + payload


def read_stream(path: Path, key: dict):
    """The ids stored in ``path`` for ``key`` (a 1-D LongTensor), or None when the file is
    missing, truncated, corrupt or holds another key."""
    import numpy as np
    import torch

    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    start = len(MAGIC) + 4
    if len(raw) < start or raw[:len(MAGIC)] != MAGIC:
        return None
    (header_len,) = struct.unpack("<I", raw[len(MAGIC):start])
    try:
        header = json.loads(raw[start:start + header_len].decode("utf-8"))
        n_tokens, expected = int(header["n_tokens"]), header["ids_sha256"]
        stored_key = header["key"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    payload = raw[start + header_len:]
    if stored_key != key or len(payload) != 4 * n_tokens or hashlib.sha256(payload).hexdigest() != expected:
        return None
    return torch.from_numpy(np.frombuffer(payload, dtype="<i4").astype(np.int64))


def write_stream(path: Path, key: dict, ids) -> bool:
    """Write ``ids`` atomically (temporary sibling, then rename); False (and a warning) if it cannot."""
    path = Path(path)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= 2**31):
        return False  # not representable as int32: never cached
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o644)  # like any other cache file (mkstemp makes it private to its owner)
        with os.fdopen(fd, "wb") as out:
            out.write(_encode_file(key, ids))
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError as err:
        warnings.warn(f"could not keep the token cache file {path} ({err}); the course still works but "
                      "tokenizes this split again next time. Point $QUANT_COURSE_CACHE at a writable folder "
                      "to keep it.", stacklevel=3)
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ---------------------------------------------------------------- the lookup


def cached_stream(tokenizer, corpus: str, split: str, texts: list[str], separator: str, build):
    """The full token stream of a split: from memory, else from disk, else ``build()`` (then kept).

    Returns None when ``tokenizer`` cannot be fingerprinted (the caller tokenizes as before).
    ``build()`` must return the split's full stream as a 1-D LongTensor. The tensor returned is
    the cached one: callers must copy before changing it.
    """
    tokenizer_id = tokenizer_fingerprint(tokenizer)
    if tokenizer_id is None:
        return None
    key = stream_key(tokenizer_id, corpus, split, texts_digest(texts), separator)
    digest = key_digest(key)
    if digest in _memo:
        _memo.move_to_end(digest)
        return _memo[digest]
    path = cache_path(key)
    ids = read_stream(path, key)
    if ids is None:
        ids = build()
        write_stream(path, key, ids)
    _memo[digest] = ids
    while len(_memo) > MEMO_SIZE:
        _memo.popitem(last=False)
    return ids


def clear_memory() -> None:
    """Forget the streams kept in memory (the files on disk stay)."""
    _memo.clear()
    _fingerprints.clear()
