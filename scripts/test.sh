#!/usr/bin/env bash
# Lint, types and every test: unit, workflow (time-skipping server) and integration
# (Temporal dev server, HAProxy, Prometheus). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy plans workflows activities worker starter demo client devstack receiver
# The layers and no cycles between sibling modules (contracts in pyproject.toml).
echo "== imports" && lint-imports
# The documentation site, every link and anchor checked; built outside the checkout.
site=$(mktemp -d)
echo "== docs" && NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
# Two pytest workers, each taking whole modules (a module shares one real stack among its
# tests): most tests wait on real servers and timers, so two at a time fit on 2 cores.
# PYTEST_WORKERS=0 runs them one after another.
echo "== pytest" && exec pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
