"""Starting one crashed process of the real stack again, for the fault tests."""

from __future__ import annotations

from pathlib import Path

from devstack import parts as stackparts
from devstack.binaries import find_binaries
from devstack.info import StackInfo, load, save
from devstack.processes import StackError, pid_alive, stop_all


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
    binaries = find_binaries(None, envoy=name == "envoy")
    if name == "temporal":
        stackparts.launch(info, name, stackparts.temporal_argv(info, binaries.temporal))
        stackparts.await_temporal(info, binaries.temporal)
    elif name in ("stable", "canary"):
        stackparts.launch(info, name, stackparts.demo_argv(info, name))
        stackparts.await_demo(info, name)
    elif name == "prometheus":
        stackparts.launch(info, name, stackparts.prometheus_argv(info, binaries.prometheus))
        stackparts.await_prometheus(info)
    elif name == "haproxy":
        stackparts.start_haproxy(info, binaries.haproxy)
    elif name == "envoy" and binaries.envoy is not None:
        stackparts.start_envoy(info, binaries.envoy)
    elif name == "loadgen":
        stackparts.launch(info, name, stackparts.loadgen_argv(info))
    else:
        stackparts.start_worker(info)
    save(info)
    return info
