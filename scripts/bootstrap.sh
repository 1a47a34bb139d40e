#!/usr/bin/env bash
# Installs what the demo and the tests need: HAProxy, Prometheus, Alertmanager and docker-compose
# (Debian packages), a virtualenv in .venv with the locked packages (requirements/dev.txt:
# the project's dependencies and all its extras) and the project itself, editable.
set -euo pipefail
cd "$(dirname "$0")/.."

need_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PYTHON=$(command -v "$candidate")
            return 0
        fi
    done
    echo "Python 3.11 or newer is needed: install it (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
    exit 1
}

need_optional() {
    # A package only some tests need: installed where apt-get is, else those tests skip.
    command -v "$1" >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Optional: $1 is missing (for $2); install it with your package manager" >&2
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing $1 with apt-get (for $2)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null ||
        echo "could not install $1: $2 will skip" >&2
}

need_packages() {
    local missing=()
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    # Alertmanager, for alerts that roll back (`rollout dev up --alerts`); Debian names it so.
    command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 ||
        missing+=(prometheus-alertmanager)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    # ssh-keygen signs operators' commands and checks them in the worker (approvers).
    command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    need_optional chromium "the test that looks at a rollout report in headless Chromium"
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Missing: ${missing[*]}. Install HAProxy 2.4+, Prometheus 2.x, Alertmanager 0.25+" >&2
        echo "and OpenSSH's client with your package manager so that 'haproxy', 'prometheus'," >&2
        echo "'alertmanager' (or 'prometheus-alertmanager') and 'ssh-keygen' are on PATH, then" >&2
        echo "run this again." >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_venv() {
    if [ ! -x .venv/bin/python ] && ! "$PYTHON" -m venv .venv 2>/dev/null; then
        # Debian and Ubuntu ship venv apart from Python itself.
        rm -rf .venv
        if command -v apt-get >/dev/null 2>&1; then
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            echo "installing python3-venv with apt-get" >&2
            $sudo apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
        fi
        "$PYTHON" -m venv .venv || {
            echo "could not create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    # Every package at the version and with the hashes requirements/dev.txt locks (refresh
    # it with scripts/lock.sh), then the project itself, editable, without resolving again.
    # Reinstalled only when the lock or pyproject.toml changed.
    local stamp=.venv/.installed-lock wanted
    wanted=$(cat pyproject.toml requirements/dev.txt | cksum)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q --require-hashes -r requirements/dev.txt
        .venv/bin/python -m pip install -q --no-deps -e .
        echo "$wanted" >"$stamp"
    fi
}

need_python
need_packages
need_venv
