#!/usr/bin/env bash
# Create (if missing) a virtualenv and install a requirements file into it:
# by default the Python reference scoring's (tests/python/requirements.txt),
# or the file given as the first argument. Idempotent: a stamp file holding
# the hash of the requirements and of the interpreter makes a rerun a no-op.
# Prints the venv's python path as the last line.
#   BRANCHSCORE_PY_VENV  venv location (default /var/tmp/bs-py-venv)
#   BRANCHSCORE_PYTHON   interpreter to create it with (default python3, needs >= 3.11)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${BRANCHSCORE_PY_VENV:-/var/tmp/bs-py-venv}"
base_python="${BRANCHSCORE_PYTHON:-python3}"
req="${1:-$here/requirements.txt}"
stamp="$venv/.branchscore-requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    "$base_python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 needed, got " + sys.version)'
    "$base_python" -m venv "$venv"
fi

want="$( { sha256sum "$req" | cut -d' ' -f1; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
    printf '%s\n' "$want" >"$stamp"
fi
echo "$venv/bin/python"
