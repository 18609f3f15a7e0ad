#!/usr/bin/env bash
# A Python virtual environment with the official OpenAI client, for the gateway's
# compatibility tests: prints the path of its python. Idempotent; no stdin.
#
#   scripts/python-env.sh [VENV_DIR]     (default <repo>/target/pyenv)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/target/pyenv}"
openai_version="3.51.0"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$openai_version" >&2
fi
echo "$venv/bin/python"
