#!/usr/bin/env bash
# Refresh constraints.txt, the lock of every version the test suite runs with.
#
#   scripts/lock.sh PYTHON_OF_THE_ENV        (make lock)
#
# Resolves pyproject.toml's ranges (with the test extra) to the newest releases, for every
# supported Python (3.10 and up) and platform at once, with uv's universal resolver (uv is
# installed into the environment if missing). torch is pinned to $TORCH_SPEC and left out
# of the lock, as are the CUDA libraries of torch's GPU builds: install.sh installs torch
# itself, and a learner's own CUDA torch decides those. After a refresh, run `make test`
# and commit constraints.txt only if it passes.
set -euo pipefail
py="$1"
here="$(cd "$(dirname "$0")/.." && pwd)"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
"$py" -m uv --version >/dev/null 2>&1 || "$py" -m pip install --quiet uv
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "$torch_spec" > "$tmp/torch.txt"
cd "$here"
"$py" -m uv pip compile pyproject.toml --extra test --universal --python-version 3.10 \
  --constraint "$tmp/torch.txt" --no-emit-package torch --no-header --annotation-style line \
  --quiet -o "$tmp/resolved.txt"
{
  echo "# The versions the test suite passed with: scripts/install.sh installs with these as"
  echo "# constraints. Made by \`make lock\` (scripts/lock.sh) on $(date -u +%Y-%m-%d) with $torch_spec;"
  echo "# never edited by hand. QUANT_COURSE_LOCK=latest (make test-latest) installs without it."
  grep -vE '^(nvidia-|cuda-)' "$tmp/resolved.txt" | grep -vE '^#'
} > constraints.txt
echo "wrote $here/constraints.txt ($(grep -cvE '^#' constraints.txt) pins); now run make test"
