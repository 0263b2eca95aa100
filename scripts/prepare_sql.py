"""Build the SQL corpus ``course_lib/corpus_files/sql.jsonl.xz`` (run once).

The source is an installed PostgreSQL server's share folder (``pg_config --sharedir``):
its ``*.sql`` scripts (system views, information schema, system functions and
constraints, snowball dictionaries) and ``extension/*.sql`` (the contrib extensions'
install and upgrade scripts). ``course_lib.data.sql_families`` groups them into one
document per script family and cleans them line by line (its module docstring says
how); this script writes those documents, in family order, as one JSON object
``{"title": ..., "text": ...}`` per line, compressed with xz at a fixed preset, so the
same share folder gives the same bytes. Dropping short families and the paragraphs a
calib family shares with an eval family happens at read time, in ``course_lib.data``.

To regenerate, from the repository root (Debian 12: ``apt install postgresql-15``)::

    python scripts/prepare_sql.py /usr/share/postgresql/15

The second (optional) argument is the output path; it defaults to the file inside the
package. The shipped file was built from Debian 12's ``postgresql-15`` package, version
15.18-0+deb12u1 (52 families, 61,792 bytes, sha256
778bdc68d9f7db347b70717e2afb3b37f72db69d274b64c245d9d17edca476bd).
"""

import argparse
import json
import lzma
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # course_lib from this checkout, installed or not

from course_lib.data import sql_families  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "course_lib" / "corpus_files" / "sql.jsonl.xz"
XZ_PRESET = 9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("share_dir", type=Path, help="a PostgreSQL share folder, e.g. /usr/share/postgresql/15")
    parser.add_argument("output", type=Path, nargs="?", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if not (args.share_dir / "system_views.sql").is_file():
        raise SystemExit(f"{args.share_dir} holds no system_views.sql; pass the output of `pg_config --sharedir`")
    families = sql_families(args.share_dir)
    lines = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in families)
    args.output.write_bytes(lzma.compress(lines.encode("utf-8"), preset=XZ_PRESET))
    print(f"{len(families)} families, {args.output.stat().st_size:,} bytes -> {args.output}")


if __name__ == "__main__":
    main()
