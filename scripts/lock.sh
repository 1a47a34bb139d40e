#!/usr/bin/env bash
# Refreshes the lock files in requirements/ from pyproject.toml, with every file's hashes:
#   runtime.txt  a production install: the worker, the `rollout` CLI, the alert receiver
#   demo.txt     the same and the demo service (the demo extra; demo/Dockerfile)
#   dev.txt      everything: the dev stack, the tests, the linters (scripts/bootstrap.sh)
# Versions already locked stay as they are unless pyproject.toml no longer allows them;
# `--upgrade` takes the newest allowed of everything, `--upgrade-package NAME` of one.
# The files are universal: one lock for every platform and Python the project supports.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv from the dev extra (.venv, made by scripts/bootstrap.sh), else the one on PATH.
uv=.venv/bin/uv
if [ ! -x "$uv" ]; then
    uv=$(command -v uv) || {
        echo "uv is missing: run bash scripts/bootstrap.sh (or pip install uv)" >&2
        exit 1
    }
fi
compile() {
    "$uv" pip compile pyproject.toml --quiet --universal --generate-hashes \
        --custom-compile-command "bash scripts/lock.sh" "$@"
}
compile --extra dev -o requirements/dev.txt "$@"
# The smaller locks start from dev.txt's versions, so all three agree on every package.
for lock in runtime demo; do
    cp requirements/dev.txt "requirements/$lock.txt"
done
compile -o requirements/runtime.txt
compile --extra demo -o requirements/demo.txt
echo "requirements/: $(grep -c '^[A-Za-z0-9]' requirements/runtime.txt) runtime," \
    "$(grep -c '^[A-Za-z0-9]' requirements/demo.txt) demo," \
    "$(grep -c '^[A-Za-z0-9]' requirements/dev.txt) dev packages locked"
