#!/usr/bin/env bash
# The static checks CI runs before the tests (scripts/test.sh calls this for a whole-suite
# run): ruff's lint rules and format, and mypy --strict, with the checkout's .venv tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VENV_BIN:-.venv/bin}
paths=(src tests bench fuzz noxfile.py setup.py)
echo "checks: ruff check, ruff format --check"
"$bin/ruff" check "${paths[@]}"
"$bin/ruff" format --check "${paths[@]}"
echo "checks: mypy --strict"
"$bin/mypy" --strict src/memcachepy tests
