"""Build the encyclopedic corpus ``course_lib/corpus_files/wiki.jsonl.xz`` (run once).

The source is the shortened English Wikipedia dump that ships as test data inside the
gensim wheel::

    gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

Each main-namespace page is turned into plain text with gensim's ``extract_pages`` and
``filter_wiki``; redirects and articles shorter than ``MIN_CHARS`` characters are
dropped; emphasis quotes (``''``, ``'''``) are removed, trailing spaces stripped and
runs of three or more newlines collapsed to one blank line. The output holds one JSON
object ``{"title": ..., "text": ...}`` per line, in dump order, compressed with xz at a
fixed preset, so the same input and library versions give the same bytes.

gensim is only needed here, never at run time. To regenerate, from the repository root::

    python -m venv /tmp/gensim-venv
    /tmp/gensim-venv/bin/pip download --no-deps gensim==4.4.0 -d /tmp/gensim_whl
    /tmp/gensim-venv/bin/pip install /tmp/gensim_whl/gensim-4.4.0-*.whl
    /tmp/gensim-venv/bin/python scripts/prepare_wiki.py /tmp/gensim_whl/gensim-4.4.0-*.whl

The first argument may also be the extracted ``.bz2`` file itself. The second
(optional) argument is the output path; it defaults to the file inside the package.
The shipped file was built from gensim 4.4.0 (105 articles, 904,768 bytes,
sha256 a93daff3fa204c8b7cf920175f5675d64ef4d0c566fe0a172e88254ce90b06a1).
"""

import argparse
import bz2
import io
import json
import lzma
import re
import zipfile
from pathlib import Path

DUMP_MEMBER = (
    "gensim/test/test_data/"
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "course_lib" / "corpus_files" / "wiki.jsonl.xz"
MIN_CHARS = 500  # articles shorter than this (after markup removal) are stubs
XZ_PRESET = 9


def read_dump_bytes(source: Path) -> bytes:
    """Return the compressed dump, read from a gensim wheel or a ``.bz2`` file."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            if DUMP_MEMBER not in wheel.namelist():
                raise SystemExit(f"{source} does not contain {DUMP_MEMBER}; use a gensim 4.x wheel")
            return wheel.read(DUMP_MEMBER)
    return source.read_bytes()


def clean_text(text: str) -> str:
    """Remove emphasis quotes and tidy whitespace in ``filter_wiki`` output."""
    text = re.sub(r"'{2,}", "", text)  # ''italic'' and '''bold''' markup
    text = re.sub(r"[ \t\u00a0]+\n", "\n", text)  # trailing spaces
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def is_redirect(raw: str) -> bool:
    """True for a redirect page (``#REDIRECT Target``), in any letter case."""
    return raw.lstrip().lower().startswith("#redirect")


def extract_articles(dump: bytes) -> list[dict]:
    """Plain-text articles ``{"title", "text"}`` in dump order, stubs and redirects dropped."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    articles = []
    pages = extract_pages(io.BytesIO(bz2.decompress(dump)), filter_namespaces=("0",))
    for title, raw, _page_id in pages:
        if not raw or is_redirect(raw):
            continue
        text = clean_text(filter_wiki(raw))
        if len(text) >= MIN_CHARS:
            articles.append({"title": title, "text": text})
    return articles


def write_jsonl_xz(articles: list[dict], output: Path) -> None:
    """Write one JSON object per line, xz-compressed with a fixed preset."""
    lines = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles)
    data = lzma.compress(lines.encode("utf-8"), format=lzma.FORMAT_XZ,
                         check=lzma.CHECK_CRC64, preset=XZ_PRESET)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="gensim wheel (.whl) or the dump .bz2")
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT_OUTPUT,
                        help=f"output .jsonl.xz (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args()
    articles = extract_articles(read_dump_bytes(args.source))
    write_jsonl_xz(articles, args.output)
    n_chars = sum(len(a["text"]) for a in articles)
    print(f"wrote {len(articles)} articles, {n_chars:,} characters, "
          f"{args.output.stat().st_size:,} bytes to {args.output}")


if __name__ == "__main__":
    main()
