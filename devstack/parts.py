"""The parts of the dev stack: how each process is started, and when it counts as ready."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from devstack.info import StackInfo, save
from devstack.processes import (
    LOCALHOST,
    StackError,
    http_ok,
    listens,
    signals_held,
    spawn,
    start_time,
    tcp_open,
    wait_ready,
)
from devstack.trust import ALLOWED_SIGNERS
from plans.runtime.visibility import ROLLOUT_ATTRIBUTES

LOAD_RPS = 40
LOAD_USERS = 1000  # flagd: the user ids the load generator sends (user-0 ... user-999)
# As the Temporal CLI's --search-attribute flag names them: RolloutWeight=Int, ...
SEARCH_ATTRIBUTES = {key.name: key.indexed_value_type.name.title() for key in ROLLOUT_ATTRIBUTES}


# The dev server's SQLite file keeps a write-ahead log, synced at checkpoints: a commit is
# one append to the log instead of a journal file created, synced and deleted, which kept
# the disk busy with many rollouts. A killed server loses nothing; only a machine that
# loses power may lose the last commits.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def launch(info: StackInfo, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start one process of the stack and record its pid in ``DIR/stack.json``."""
    log = info.path / "logs" / f"{name}.log"
    # Recorded at once, and no signal in between, so `down` can stop it whenever `up` stops.
    with signals_held():
        pid = spawn(argv, log, env=env, cwd=info.path)
        info.pids[name] = pid
        info.pid_created[name] = start_time(pid)
        info.logs[name] = str(log)
        save(info)
    return pid


def await_ready(
    info: StackInfo, name: str, ready: Callable[[], bool], timeout: float = 30.0
) -> None:
    """Wait until ``ready`` holds for the process ``name``; StackError names its log if not."""
    wait_ready(name, info.pids[name], Path(info.logs[name]), ready, timeout=timeout)


def temporal_argv(info: StackInfo, binary: str) -> list[str]:
    """The Temporal dev server's command line, with the Rollout* search attributes."""
    ports = info.ports
    argv = [binary, "server", "start-dev", "--ip", LOCALHOST]
    argv += ["--port", str(ports["temporal"]), "--ui-port", str(ports["temporal_ui"])]
    argv += ["--http-port", str(ports["temporal_http"])]
    argv += ["--metrics-port", str(ports["temporal_metrics"])]
    argv += ["--db-filename", str(info.path / "temporal.db"), "--namespace", info.namespace]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    for pragma in SQLITE_PRAGMAS:
        argv += ["--sqlite-pragma", pragma]
    return [*argv, "--log-level", "warn", "--ui-disable-news-fetch"]


def missing_search_attributes(info: StackInfo) -> dict[str, str]:
    """The Rollout* search attributes the stack's Temporal does not know yet (name -> type)."""
    url = (
        f"http://{LOCALHOST}:{info.ports['temporal_http']}"
        f"/api/v1/namespaces/{info.namespace}/search-attributes"
    )
    try:
        response = httpx.get(url, timeout=5.0)
        body = response.json() if response.is_success else None
    except (httpx.HTTPError, ValueError):
        body = None
    known = body.get("customAttributes") if isinstance(body, dict) else None
    if not isinstance(known, dict):
        # Cannot tell: registering again is harmless.
        return dict(SEARCH_ATTRIBUTES)
    return {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in known}


def register_search_attributes(info: StackInfo, binary: str) -> None:
    """Register the Rollout* search attributes the stack's Temporal lacks."""
    # start-dev registers --search-attribute only when it creates the database, so an
    # older database kept in DIR gets any attribute added since then here.
    missing = missing_search_attributes(info)
    if not missing:
        return
    argv = [binary, "operator", "search-attribute", "create"]
    for name, kind in missing.items():
        argv += ["--name", name, "--type", kind]
    argv += ["--address", info.temporal_address, "--namespace", info.namespace]
    log = info.logs.get("temporal", "its log")
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise StackError(
            f"Temporal at {info.temporal_address} did not register the search attributes"
            f" within 30s: see {log}, then try `rollout dev up` again"
        ) from None
    except OSError as error:
        raise StackError(f"cannot run {binary} ({error.strerror or error})") from None
    if result.returncode != 0:
        raise StackError(
            f"Temporal at {info.temporal_address} refused the search attributes"
            f" ({result.stderr.strip()}): see {log}"
        )


def demo_argv(info: StackInfo, version: str) -> list[str]:
    """The command line of the demo service of ``version``."""
    port = str(info.ports[version])
    argv = [sys.executable, "-m", "demo.service", "--port", port, "--version", version]
    if info.flag_file is not None:
        argv += ["--flag-file", info.flag_file, "--flag", info.flag_key or ""]
        argv += ["--poll-ms", str(info.flag_poll_ms)]
        if info.variants:
            argv += ["--variants", ",".join(["stable", "canary", *info.variants])]
    return argv


def loadgen_argv(info: StackInfo) -> list[str]:
    """The load generator's command line: steady requests through the stack's router."""
    argv = [sys.executable, "-m", "demo.loadgen", "--url", info.app_url]
    if "tasks" in info.ports:
        argv += ["--tasks-port", str(info.ports["tasks"])]
    if info.router == "flagd":
        argv += ["--users", str(LOAD_USERS)]
    return [*argv, "--rps", str(LOAD_RPS)]


def start_worker(info: StackInfo) -> None:
    """Start the worker and wait until it serves its metrics."""
    pid = launch(info, "worker", [sys.executable, "-m", "worker"], env=worker_env(info))
    await_ready(info, "worker", lambda: listens(pid, info.ports["worker_metrics"]))


def server_argv(info: StackInfo, binary: str, name: str, port: str, storage: str) -> list[str]:
    """The flags Prometheus and Alertmanager share: ``name``.yml, data in ``name``, a port."""
    return [
        binary,
        f"--config.file={info.path / f'{name}.yml'}",
        f"--{storage}={info.path / name}",
        f"--web.listen-address={LOCALHOST}:{info.ports[port]}",
    ]


def prometheus_argv(info: StackInfo, binary: str) -> list[str]:
    """Prometheus's command line, scraping what prometheus.yml names."""
    return [
        *server_argv(info, binary, "prometheus", "prometheus", "storage.tsdb.path"),
        "--storage.tsdb.retention.time=2d",
        "--log.level=warn",
        # Alerts link back to their graph here (generatorURL), not to the machine's hostname.
        *([f"--web.external-url={info.prometheus_url}"] if info.alertmanager_url else []),
    ]


def start_haproxy(info: StackInfo, binary: str) -> None:
    """Start HAProxy and wait until its app port, exporter and admin socket answer."""
    ports = info.ports
    pid = launch(info, "haproxy", [binary, "-f", str(info.path / "haproxy.cfg"), "-db"])
    await_ready(
        info,
        "haproxy",
        lambda: (
            listens(pid, ports["app"])
            and listens(pid, ports["haproxy_metrics"])
            and Path(info.haproxy_socket).exists()
        ),
    )


def envoy_argv(info: StackInfo, binary: str) -> list[str]:
    """Envoy's command line: one worker thread, and no hot restart.

    Hot restart would share memory with any other Envoy of the same base id on the machine;
    a dev stack's Envoy is restarted by stopping it and starting it again.
    """
    config = str(info.path / "envoy.yaml")
    return [binary, "-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "warn"]


def start_envoy(info: StackInfo, binary: str) -> None:
    """Start Envoy and wait until its admin API says it is live and its app port listens."""
    ports = info.ports
    pid = launch(info, "envoy", envoy_argv(info, binary))
    await_ready(
        info,
        "envoy",
        lambda: listens(pid, ports["envoy_app"]) and http_ok(f"{info.envoy_admin}/ready"),
    )


def await_temporal(info: StackInfo, binary: str) -> None:
    """Wait until Temporal serves its namespace and UI, then register the search attributes."""
    ports = info.ports
    namespace = f"http://{LOCALHOST}:{ports['temporal_http']}/api/v1/namespaces/{info.namespace}"
    await_ready(
        info,
        "temporal",
        lambda: http_ok(namespace) and tcp_open(ports["temporal_ui"]),
        timeout=60.0,
    )
    register_search_attributes(info, binary)


def worker_env(info: StackInfo) -> dict[str, str]:
    """The environment that points the worker at this stack."""
    return {
        "TEMPORAL_ADDRESS": info.temporal_address,
        "TEMPORAL_NAMESPACE": info.namespace,
        "ROLLOUT_TASK_QUEUE": info.task_queue,
        "ROLLOUT_WORKER_METRICS": info.worker_metrics or "",
        # Messages link to this stack's UI; the record of sent messages lives with the stack.
        "TEMPORAL_UI_URL": info.ui_url,
        "ROLLOUT_NOTIFY_DIR": str(Path(info.dir) / "notices"),
        # Each rollout's report is written here when it ends (`rollout report` reads anew).
        "ROLLOUT_REPORT_DIR": str(Path(info.dir) / "reports"),
        # Signed approvals of the local user's keys (devstack.trust) are verified here.
        "ROLLOUT_ALLOWED_SIGNERS": str(Path(info.dir) / ALLOWED_SIGNERS),
    }


def await_demo(info: StackInfo, version: str) -> None:
    """Wait until the demo service of ``version`` answers its health check."""
    url = f"http://{LOCALHOST}:{info.ports[version]}/healthz"
    # The version header proves the answer comes from our process, not a stranger's.
    await_ready(info, version, partial(http_ok, url, header=("X-Version", version)))


def await_prometheus(info: StackInfo) -> None:
    """Wait until Prometheus says it is ready."""
    await_ready(info, "prometheus", lambda: http_ok(f"{info.prometheus_url}/-/ready"))


def alertmanager_argv(info: StackInfo, binary: str) -> list[str]:
    """Alertmanager's command line: one instance, no cluster, routing to the receiver."""
    return [
        *server_argv(info, binary, "alertmanager", "alertmanager", "storage.path"),
        f"--web.external-url={info.alertmanager_url}",
        # An empty address turns clustering off: no gossip port, no waiting for peers.
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


def await_alertmanager(info: StackInfo) -> None:
    """Wait until Alertmanager says it is ready."""
    await_ready(info, "alertmanager", lambda: http_ok(f"{info.alertmanager_url}/-/ready"))


def start_alert_receiver(info: StackInfo) -> None:
    """Start `rollout alerts serve` for this stack and wait until it answers its health check."""
    listen = f"{LOCALHOST}:{info.ports['alerts']}"
    argv = [sys.executable, "-m", "starter", "alerts", "serve", "--listen", listen]
    env = {
        "TEMPORAL_ADDRESS": info.temporal_address,
        "TEMPORAL_NAMESPACE": info.namespace,
        "ROLLOUT_ALERT_TOKEN": info.alert_token_file.read_text().strip(),
    }
    launch(info, "alerts", argv, env=env)
    await_ready(info, "alerts", lambda: http_ok(f"http://{listen}/-/healthy"))
