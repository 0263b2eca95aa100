"""Corpora for calibration and evaluation: encyclopedic text and Python code, offline.

Two corpora, each cut into two parts that never overlap:

- ``"wiki"``: 105 English Wikipedia articles (CC BY-SA, see ``corpus_files/NOTICE.md``),
  shipped as ``corpus_files/wiki.jsonl.xz`` and rebuilt by ``scripts/prepare_wiki.py``.
- ``"code"``: a fixed, sorted list of pure-Python modules from the running interpreter's
  own standard library (PSF licence; read in place, not redistributed). Its text, and
  so its token counts, follow the Python version.
- ``"sql"``: PostgreSQL 15's own SQL scripts (system views, information schema, system
  functions and the contrib extensions' install and upgrade scripts; PostgreSQL Licence, see
  ``corpus_files/NOTICE.md``), shipped as ``corpus_files/sql.jsonl.xz`` and rebuilt by
  ``scripts/prepare_sql.py``. DDL and catalog queries, not the questions and queries an SQL
  assistant sees. ``$QUANT_COURSE_SQL_DIR`` may name an installed PostgreSQL's share folder
  (``pg_config --sharedir``) to read its scripts instead. One document per script family
  (all versions and upgrade scripts of one extension together, so no version of a script
  sits in the other split), cleaned line by line: psql meta-commands, non-ASCII lines, lines
  over 200 characters and lines with a run of 16 or more of one character are dropped (one
  such run alone drove a raw perplexity above 2,000).
  Extensions copy statements from each other: a paragraph (text between blank lines) of a
  calib document that an eval document also holds is dropped from the calib document.

Documents are split whole: document ``i`` belongs to ``"eval"`` when ``i % 5 == 0``, to
``"calib"`` otherwise (for code, ``i`` is the position in the fixed list, so a module
missing from one Python version does not move the others; for SQL, the position in the
sorted list of families). Calibration windows are drawn only from ``"calib"``; perplexity
is measured only on ``"eval"``.

Token streams join documents with the tokens of ``"\\n\\n"``; each document is tokenized
on its own (``add_special_tokens=False``), so a prefix of the stream never depends on
what follows it. A split is also a ``datasets.Dataset`` to inspect, filter and map:
:func:`as_dataset` (its documents) and :func:`tokenized_dataset` (with their token ids),
tokenized once per machine by a cached ``Dataset.map`` and then read from the course cache
folder (:mod:`course_lib.token_cache` says how it is keyed and checked).
"""

import json
import lzma
import os
import re
import sysconfig
from importlib import resources
from pathlib import Path

from . import token_cache

CORPORA = ("wiki", "code", "sql")
SPLITS = ("calib", "eval")
SQL_DIR_VAR = "QUANT_COURSE_SQL_DIR"
SQL_MAX_LINE = 200  # characters
SQL_MAX_RUN = 16  # a run of this many of one character drops the line
SQL_MIN_CHARS = 150  # shorter families (after cleaning: a comment and a line or two) are dropped
EVAL_EVERY = 5  # document i is in "eval" when i % EVAL_EVERY == 0
DOCUMENT_SEPARATOR = "\n\n"
WIKI_FILE = "wiki.jsonl.xz"
SQL_FILE = "sql.jsonl.xz"
REBUILD_HINT = (
    "reinstall course_lib (pip install --force-reinstall .) or rebuild the file with "
    "`python scripts/prepare_{name}.py` (its docstring says how)"
)

# Top-level pure-Python stdlib modules present in Python 3.10-3.13 (sorted, fixed).
# Left out on purpose: shims (datetime, decimal, struct), modules that became packages
# (pathlib, zipfile, re), modules removed by 3.13, and files that are mostly data tables.
STDLIB_FILES = (
    "argparse.py", "ast.py", "base64.py", "bdb.py", "bisect.py", "bz2.py",
    "calendar.py", "code.py", "codeop.py", "colorsys.py", "configparser.py",
    "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "difflib.py", "dis.py",
    "enum.py", "filecmp.py", "fileinput.py", "fnmatch.py", "fractions.py", "ftplib.py",
    "functools.py", "genericpath.py", "gettext.py", "glob.py", "graphlib.py", "gzip.py",
    "hashlib.py", "heapq.py", "hmac.py", "inspect.py", "ipaddress.py", "linecache.py",
    "lzma.py", "ntpath.py", "numbers.py", "operator.py", "os.py", "pdb.py", "pickle.py",
    "pkgutil.py", "platform.py", "plistlib.py", "posixpath.py", "pprint.py",
    "profile.py", "pstats.py", "py_compile.py", "pyclbr.py", "queue.py", "random.py",
    "reprlib.py", "runpy.py", "selectors.py", "shlex.py", "shutil.py", "smtplib.py",
    "socket.py", "socketserver.py", "ssl.py", "statistics.py", "string.py",
    "subprocess.py", "symtable.py", "tempfile.py", "textwrap.py", "threading.py",
    "timeit.py", "tokenize.py", "trace.py", "traceback.py", "tracemalloc.py",
    "types.py", "typing.py", "uuid.py", "warnings.py", "weakref.py", "zipimport.py",
)


# ---------------------------------------------------------------- validation


def _check_corpus(corpus) -> None:
    """Raise ValueError naming the corpora when ``corpus`` is unknown."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; use one of {', '.join(repr(c) for c in CORPORA)}")


def _check_split(split) -> None:
    """Raise ValueError naming the splits when ``split`` is unknown."""
    if split not in SPLITS:
        available = ", ".join(repr(s) for s in SPLITS)
        raise ValueError(f"unknown split {split!r}; use one of {available}")


def _check_int(name: str, value, minimum: int) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) and ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# ---------------------------------------------------------------- documents


def _wiki_file():
    """The packaged wiki file (a Traversable; a plain Path in a normal install)."""
    return resources.files("course_lib.corpus_files") / WIKI_FILE


def _sql_file():
    """The packaged SQL file (a Traversable; a plain Path in a normal install)."""
    return resources.files("course_lib.corpus_files") / SQL_FILE


def _read_documents(source, name: str) -> list[dict]:
    """Parse xz-compressed JSON lines ``{"title", "text"}``; raise a helpful error if damaged."""
    hint = REBUILD_HINT.format(name=name)
    if not source.is_file():
        raise FileNotFoundError(f"{name} corpus file {source} is missing; {hint}")
    try:
        lines = lzma.decompress(source.read_bytes()).decode("utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        docs = [{"title": str(r["title"]), "text": str(r["text"])} for r in records]
    except (lzma.LZMAError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{name} corpus file {source} is corrupt ({err}); {hint}") from err
    if not docs:
        raise ValueError(f"{name} corpus file {source} holds no documents; {hint}")
    return docs


def _stdlib_sources() -> list[dict | None]:
    """One ``{"title", "text"}`` per entry of STDLIB_FILES; None where absent here."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [
        {"title": name, "text": (stdlib / name).read_text(encoding="utf-8")}
        if (stdlib / name).is_file() else None
        for name in STDLIB_FILES
    ]
    if not any(sources):
        raise FileNotFoundError(
            f"no standard-library sources found in {stdlib}; this interpreter ships "
            "only bytecode: install its source files (e.g. the distribution's "
            "python3 stdlib package) or use corpus='wiki'"
        )
    return sources


def sql_share_dir() -> Path | None:
    """The installed PostgreSQL share folder named by ``$QUANT_COURSE_SQL_DIR``, or None.

    None (the variable unset or empty) means the shipped scripts are read.
    """
    chosen = os.environ.get(SQL_DIR_VAR)
    if not chosen:
        return None
    folder = Path(chosen)
    if not (folder / "system_views.sql").is_file():
        raise FileNotFoundError(f"${SQL_DIR_VAR}={chosen} holds no system_views.sql; point it at a PostgreSQL "
                                "share folder (the output of `pg_config --sharedir`) or unset it to use the "
                                "scripts shipped with the course")
    return folder


def available_corpora() -> tuple[str, ...]:
    """The corpora this machine can read: all of them (each is shipped or part of Python)."""
    return CORPORA


def clean_sql(text: str) -> str:
    """Drop psql meta-commands, non-ASCII lines, long lines and lines with long runs of one character."""
    run = re.compile(r"(.)\1{%d,}" % (SQL_MAX_RUN - 1))
    kept = [line.rstrip() for line in text.splitlines()
            if not line.lstrip().startswith("\\") and line.isascii() and len(line) <= SQL_MAX_LINE
            and not run.search(line.replace(" ", ""))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def sql_families(folder: Path) -> list[dict]:
    """One cleaned ``{"title", "text"}`` per script family of a PostgreSQL share folder, sorted by family.

    What ``scripts/prepare_sql.py`` ships, and what ``$QUANT_COURSE_SQL_DIR`` reads instead.
    """
    families: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.sql")) + sorted(folder.glob("extension/*.sql")):
        if path.name.startswith("fix-CVE"):  # a security patch that re-creates system views: their text again
            continue
        families.setdefault(path.name.split("--")[0].removesuffix(".sql"), []).append(path)  # hstore--1.4.sql: hstore
    return [{"title": name, "text": "\n\n".join(clean_sql(p.read_text(encoding="utf-8", errors="replace"))
                                                for p in paths)} for name, paths in sorted(families.items())]


def _sql_sources() -> list[dict | None]:
    """The SQL documents by family position: shipped, or read from ``$QUANT_COURSE_SQL_DIR``."""
    folder = sql_share_dir()
    docs = sql_families(folder) if folder is not None else _read_documents(_sql_file(), "sql")
    docs = [doc for doc in docs if len(doc["text"]) >= SQL_MIN_CHARS]  # as for wiki: no stubs
    # Extensions copy statements from each other: a paragraph of a calib family that an eval
    # family also holds is dropped from the calib side, so no statement sits in both splits.
    in_eval = {chunk for i, doc in enumerate(docs) if split_of(i) == "eval" for chunk in doc["text"].split("\n\n")}
    # (A family left too short becomes None: the positions, and so the split, of the others stay.)
    kept = [doc if split_of(i) == "eval" else
            {"title": doc["title"], "text": "\n\n".join(c for c in doc["text"].split("\n\n") if c not in in_eval)}
            for i, doc in enumerate(docs)]
    return [doc if len(doc["text"]) >= SQL_MIN_CHARS else None for doc in kept]


def split_of(index: int) -> str:
    """The split of the document at position ``index`` of its corpus."""
    return "eval" if index % EVAL_EVERY == 0 else "calib"


def documents(corpus: str, split: str) -> list[dict]:
    """The documents ``{"title", "text"}`` of one split of a corpus, in a fixed order."""
    _check_corpus(corpus)
    _check_split(split)
    all_docs = {"wiki": lambda: _read_documents(_wiki_file(), "wiki"), "code": _stdlib_sources, "sql": _sql_sources}[corpus]()
    return [doc for i, doc in enumerate(all_docs) if doc is not None and split_of(i) == split]


def corpus_text(corpus: str, split: str) -> str:
    """All texts of a split joined by a blank line (``"\\n\\n"``)."""
    return DOCUMENT_SEPARATOR.join(doc["text"] for doc in documents(corpus, split))


def as_dataset(corpus: str, split: str):
    """The split as a ``datasets.Dataset`` with columns ``"title"`` and ``"text"``, one row per document.

    Kept in the course cache folder, so ``.filter``, ``.map`` and the rest cache their results there.
    """
    return token_cache.text_dataset(documents(corpus, split), split)


def tokenized_dataset(tokenizer, corpus: str, split: str):
    """The split as a ``datasets.Dataset`` with columns ``"title"``, ``"text"`` and ``"input_ids"``.

    ``input_ids`` are each document's tokens without special tokens, the pieces that
    :func:`token_ids` joins. Needs a Hugging Face fast tokenizer; tokenized once per machine.
    """
    if not token_cache.is_cacheable(tokenizer):
        raise TypeError(f"tokenized_dataset needs a Hugging Face fast tokenizer, got {type(tokenizer).__name__}; "
                        "load one with transformers.AutoTokenizer.from_pretrained(...) or use token_ids")
    return _tokenized(tokenizer, corpus, split, documents(corpus, split))


def _tokenized(tokenizer, corpus: str, split: str, docs: list[dict]):
    return token_cache.tokenized(token_cache.text_dataset(docs, split), tokenizer, desc=f"Tokenizing {corpus} {split}")


# ---------------------------------------------------------------- tokens


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without BOS/EOS."""
    return token_cache.encode(tokenizer, texts)


def _token_stream(tokenizer, texts: list[str], max_tokens: int | None) -> list[int]:
    """Concatenate the texts' tokens with separators; stop once ``max_tokens`` are in."""
    separator = _encode(tokenizer, [DOCUMENT_SEPARATOR])[0]
    # Whole split: one batched call (fast tokenizers parallelise it).
    # Prefix: one document at a time, so a short prefix stays cheap.
    encoded = iter(_encode(tokenizer, texts)) if max_tokens is None else (
        _encode(tokenizer, [text])[0] for text in texts)
    stream: list[int] = []
    for i, ids in enumerate(encoded):
        if i > 0:
            stream.extend(separator)
        stream.extend(ids)
        if max_tokens is not None and len(stream) >= max_tokens:
            break
    return stream


def token_ids(tokenizer, corpus: str, split: str, max_tokens: int | None = None):
    """The split as one 1-D LongTensor of token ids, cut to ``max_tokens`` if given.

    ``token_ids(tok, c, s, n)`` equals ``token_ids(tok, c, s)[:n]``. With a Hugging Face fast
    tokenizer the stream is :func:`tokenized_dataset`'s ``input_ids`` joined, tokenized once per
    machine (cached under the course cache folder, keyed by the tokenizer, the split's texts and
    everything else the ids depend on: see :mod:`course_lib.token_cache`). Any other tokenizer
    (a plain callable) is called on every request, and for a prefix only on the documents it needs.
    """
    import torch

    if max_tokens is not None:
        _check_int("max_tokens", max_tokens, 1)
    docs = documents(corpus, split)
    if token_cache.is_cacheable(tokenizer):
        separator = _encode(tokenizer, [DOCUMENT_SEPARATOR])[0]
        stream = token_cache.token_stream(_tokenized(tokenizer, corpus, split, docs), separator)
    else:
        stream = torch.tensor(_token_stream(tokenizer, [doc["text"] for doc in docs], max_tokens), dtype=torch.long)
    if max_tokens is not None and len(stream) < max_tokens:
        raise ValueError(
            f"the {corpus!r} {split!r} split has only {len(stream)} tokens, fewer than "
            f"max_tokens={max_tokens}; ask for at most {len(stream)} tokens"
        )
    return stream[:max_tokens].clone() if max_tokens is not None else stream


def calibration_batches(tokenizer, corpus: str = "wiki", n_samples: int = 128,
                        seq_len: int = 512, seed: int = 0):
    """``n_samples`` random windows of ``seq_len`` tokens from the calib split.

    Window starts are drawn uniformly from ``[0, n_tokens - seq_len]`` with
    ``torch.Generator().manual_seed(seed)``, so a seed fixes the batch. Windows may
    overlap each other but never touch the eval split. Returns a LongTensor
    ``[n_samples, seq_len]``.
    """
    import torch

    _check_corpus(corpus)
    _check_int("n_samples", n_samples, 1)
    _check_int("seq_len", seq_len, 2)
    _check_int("seed", seed, 0)
    tokens = token_ids(tokenizer, corpus, "calib")  # [n_tokens]
    n_tokens = tokens.numel()
    if seq_len > n_tokens:
        raise ValueError(
            f"seq_len={seq_len} is longer than the {corpus!r} calib split "
            f"({n_tokens} tokens); use seq_len <= {n_tokens}"
        )
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, n_tokens - seq_len + 1, (n_samples,), generator=generator)
    positions = starts[:, None] + torch.arange(seq_len)  # [n_samples, seq_len]
    return tokens[positions]
