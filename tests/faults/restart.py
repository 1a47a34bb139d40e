"""Starting one crashed process of the real stack again, for the fault tests."""

from __future__ import annotations

from pathlib import Path

from starter.devstack import _find_binaries
from starter.processes import StackError, pid_alive, stop_all
from starter.stackinfo import StackInfo, load, save
from starter.stackparts import (
    await_demo,
    await_prometheus,
    await_temporal,
    demo_argv,
    launch,
    loadgen_argv,
    prometheus_argv,
    start_haproxy,
    start_worker,
    temporal_argv,
)


def restart(dir: Path, name: str) -> StackInfo:
    """Start one process of the stack in ``dir`` again: same argv, environment, ports and data.

    For recovering from a crash (the fault tests kill processes with SIGKILL); a copy that
    still runs is stopped first. The Temporal dev server reopens its SQLite file, Prometheus
    its TSDB. The new pid is recorded in ``DIR/stack.json``.
    """
    info = load(Path(dir).resolve())
    if name not in info.pids:
        known = ", ".join(sorted(info.pids)) or "none"
        raise StackError(f"the stack in {dir} has no process {name!r} (it has: {known})")
    pid = info.pids[name]
    if pid_alive(pid, info.pid_created.get(name)):
        stop_all({name: pid})
    binaries = _find_binaries(None)
    if name == "temporal":
        launch(info, name, temporal_argv(info, binaries.temporal))
        await_temporal(info, binaries.temporal)
    elif name in ("stable", "canary"):
        launch(info, name, demo_argv(info, name))
        await_demo(info, name)
    elif name == "prometheus":
        launch(info, name, prometheus_argv(info, binaries.prometheus))
        await_prometheus(info)
    elif name == "haproxy":
        start_haproxy(info, binaries.haproxy)
    elif name == "loadgen":
        launch(info, name, loadgen_argv(info))
    else:
        start_worker(info)
    save(info)
    return info
