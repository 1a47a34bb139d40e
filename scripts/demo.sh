#!/usr/bin/env bash
# A real rollout on the embedded stack; pass --faulty to watch an automatic rollback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/rollout demo "$@"
