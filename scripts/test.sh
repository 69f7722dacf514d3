#!/usr/bin/env bash
# Set up, then run the linter, the formatter check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# pytest exits 5 when it collects no test, which fails this script like any other failure
exec .venv/bin/python -m pytest "$@"
