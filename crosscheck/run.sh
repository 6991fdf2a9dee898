#!/usr/bin/env bash
# Cross-check our SEQ, K2IS and FRMS6 readers against LiberTEM 0.16's (see README.md here).
#
# Usage: crosscheck/run.sh [VENV]
#   VENV: a virtual environment to create, or to reuse where it exists (default:
#   .venv-crosscheck in the repository root). Installs libertem==0.16.0 and this package with
#   its `test` extra into it, runs `pytest crosscheck/ -q` and exits with pytest's status.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-crosscheck}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "crosscheck: creating $venv" >&2
    "$python" -m venv "$venv"
fi
echo "crosscheck: installing libertem==0.16.0 and libertem_gpu[test] into $venv" >&2
"$venv/bin/python" -m pip install -q "libertem==0.16.0" -e "$root[test]"

cd "$root"
# -p no:cacheprovider: no .pytest_cache in the checkout; the files go to pytest's tmp folder.
exec "$venv/bin/python" -m pytest crosscheck/ -q -p no:cacheprovider "${@:2}"
