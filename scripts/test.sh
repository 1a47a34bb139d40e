#!/usr/bin/env bash
# Lint, types and every test: unit, workflow (time-skipping server) and integration
# (Temporal dev server, HAProxy, Prometheus). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy plans workflows activities worker starter demo
echo "== pytest" && exec pytest -q "$@"
