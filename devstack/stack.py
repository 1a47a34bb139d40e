"""The embedded dev stack: Temporal dev server, HAProxy, Prometheus, the demo service and load.

With ``router="envoy"`` Envoy runs beside HAProxy: the load goes through Envoy and the
stack's demo plan moves Envoy's weights.

Everything listens on 127.0.0.1 and lives in one folder (configs, logs, the Temporal
database, Prometheus data) described by ``DIR/stack.json``. ``up`` starts the processes
in the background, ``down`` stops them by pid, ``fault`` makes the canary misbehave.
This module is the stack's lifecycle; ``info`` (its description), ``configs``
(its files) and ``parts`` (each process) hold the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

from devstack import fleet as fleetstack
from devstack.binaries import Binaries, envoy_binary, find_binaries
from devstack.configs import write_configs
from devstack.info import (
    ALERT_PORTS,
    ALERT_ROLES,
    DEFAULT_PORTS,
    ENVOY_PORTS,
    RouterKind,
    StackInfo,
    load,
    load_if_any,
    save,
    stack_file,
    stack_info,
)
from devstack.parts import (
    alertmanager_argv,
    await_alertmanager,
    await_demo,
    await_prometheus,
    await_ready,
    await_temporal,
    demo_argv,
    launch,
    loadgen_argv,
    prometheus_argv,
    start_alert_receiver,
    start_envoy,
    start_haproxy,
    start_worker,
    temporal_argv,
)
from devstack.processes import (
    PortTaken,
    StackError,
    choose_ports,
    listens,
    pid_alive,
    require_extra,
    signals_held,
    signals_interrupt,
    stop_all,
)
from plans.text import SAFE_NAME

# Starts of the whole stack when a port is lost to another program in the meantime.
PORT_ATTEMPTS = 3

__all__ = [
    "StackError",
    "StackInfo",
    "down",
    "envoy_binary",
    "fault",
    "is_up",
    "load",
    "running",
    "stack_file",
    "status",
    "up",
]

# Clients stop before the servers they talk to, so their logs stay free of noise.
CLIENTS = ("loadgen", "worker", "alerts")


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


class StackOptions(TypedDict, total=False):
    """How ``up`` starts a stack; ``running`` passes them on as they are."""

    with_worker: bool
    temporal_bin: str | None
    ports: Mapping[str, int] | None
    router: RouterKind
    alerts: bool
    targets: Sequence[str]
    variants: Sequence[str]


def up(
    dir: Path,
    *,
    with_worker: bool = True,
    temporal_bin: str | None = None,
    ports: Mapping[str, int] | None = None,
    router: RouterKind = "haproxy",
    alerts: bool = False,
    targets: Sequence[str] = (),
    variants: Sequence[str] = (),
) -> StackInfo:
    """Start the whole stack in ``dir`` in the background and wait until every part is ready.

    ``router`` says where the load goes and what the demo plan moves: ``haproxy`` (the
    default), ``envoy`` (the load through Envoy) or ``flagd`` (a feature flag). With
    ``alerts`` the stack also runs Alertmanager and the rollout alert receiver, and
    Prometheus evaluates an alert on the canary's error rate. A stack already running in
    ``dir`` is returned as it is (``reused`` is then True); one running with another router,
    or without alerts when they are asked for, is an error.
    ``ports`` overrides preferred ports by role (see DEFAULT_PORTS and ALERT_PORTS; 0 means
    any free one). ``variants`` are an experiment's further demo variants beside stable and
    canary (``canary-b``...): with haproxy each runs as a demo service of its own, a server
    of the backend at weight 0; with flagd both services serve it as a variant of the flag.
    If starting fails, or SIGTERM or Ctrl-C interrupts it, what was started is stopped
    (in the main thread; elsewhere a signal cannot reach this code).
    """
    require_extra()
    dir = Path(dir).resolve()
    variants = _checked_variants(variants)
    if is_up(dir):
        running = load(dir)
        if running.router != router:
            raise StackError(
                f"the dev stack in {dir} runs with router {running.router}, not {router}: stop"
                f" it first with `rollout dev down --dir {shlex.quote(str(dir))}`"
            )
        if alerts and running.alerts_url is None:
            raise StackError(
                f"the dev stack in {dir} runs without alerts: stop it with"
                f" `rollout dev down --dir {shlex.quote(str(dir))}`, then `rollout dev up --alerts`"
            )
        if targets and not (dir / fleetstack.FLEET_FILE).exists():
            raise StackError(
                f"the dev stack in {dir} runs without targets: stop it with"
                f" `rollout dev down --dir {shlex.quote(str(dir))}`, then `rollout dev up"
                f" --targets {','.join(targets)}`"
            )
        if variants and running.variants != variants:
            raise StackError(
                f"the dev stack in {dir} runs with variants"
                f" {', '.join(running.variants) or 'stable and canary only'}: stop it with"
                f" `rollout dev down --dir {shlex.quote(str(dir))}` and start it with"
                f" {', '.join(variants)}"
            )
        return running.model_copy(update={"reused": True})
    earlier = load_if_any(dir)
    # A folder that cannot hold files is said in a sentence when the configs are written.
    with contextlib.suppress(OSError):
        (dir / fleetstack.FLEET_FILE).unlink(missing_ok=True)
    if earlier is not None:
        # Survivors of a stack that half died would hold the ports and the database.
        down(dir)
    binaries = find_binaries(temporal_bin, envoy=router == "envoy", alerts=alerts)
    preferred = {
        **DEFAULT_PORTS,
        **(ALERT_PORTS if alerts else {}),
        **(earlier.ports if earlier else {}),
        **(ports or {}),
    }
    for role in earlier.variants if earlier else []:
        preferred.pop(role, None)
    if router != "flagd":
        preferred |= {name: (ports or {}).get(name, 0) for name in variants}
    if not with_worker:
        preferred.pop("worker_metrics", None)
    if router != "envoy":
        for role in ENVOY_PORTS:
            preferred.pop(role, None)
    if not alerts:
        for role in ALERT_ROLES:
            preferred.pop(role, None)
    with signals_interrupt():
        for attempt in range(PORT_ATTEMPTS):
            info = stack_info(dir, choose_ports(preferred), router, variants)
            try:
                write_configs(info)
                _start(info, binaries)
                if targets:
                    fleetstack.up_fleet(info, list(targets), binaries.haproxy, binaries.prometheus)
                info.state = "up"
                save(info)
                return info
            except PortTaken:
                down(dir)
                # Another program bound a port between our look and our bind (two stacks
                # starting at once): start again on ports nobody prefers.
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                preferred = dict.fromkeys(preferred, 0)
            except BaseException:
                down(dir)
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running(
    dir: Path,
    *,
    keep: bool = False,
    **options: Unpack[StackOptions],
) -> Iterator[StackInfo]:
    """The stack in ``dir`` (``up`` with the same options) for the block, stopped when it ends.

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
    info = load_if_any(Path(dir))
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
        save(info)
    return stopped


def fault(
    dir: Path,
    error_rate: float,
    latency_ms: int,
    *,
    version: str = "canary",
) -> dict[str, Any]:
    """Make one demo version (the canary by default) fail or slow down; return its new fault.

    ``version`` is stable, canary or one of the stack's further variants. With a flagd stack
    both demo services serve every variant: each gets the variant's fault.
    """
    info = load(dir)
    known = ("stable", "canary", *info.variants)
    if version not in known:
        raise StackError(f"the dev stack has no version {version!r}: use {', '.join(known)}")
    path = f"fault?version={version}" if info.router == "flagd" else "fault"
    result: dict[str, Any] = {}
    for base in info.version_urls(version):
        result = _fault(info, base, path, version, error_rate, latency_ms)
    return result


def _fault(
    info: StackInfo, base: str, path: str, version: str, error_rate: float, latency_ms: int
) -> dict[str, Any]:
    url = base + path
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


def _checked_variants(variants: Sequence[str]) -> list[str]:
    """The further variants a stack may run: named safely, once each, two at most."""
    names = list(variants)
    if not names:
        return names
    if len(names) > 2:
        raise StackError(
            f"{len(names)} further variants: an experiment runs 4 variants at most, stable"
            " and canary among them"
        )
    for name in names:
        if not SAFE_NAME.match(name) or name in ("stable", "canary") or names.count(name) > 1:
            raise StackError(
                f"variant {name!r}: name each further variant once, not stable or canary, with"
                " letters, digits, '_', '.', ':' or '-'"
            )
        if name in DEFAULT_PORTS or name in ALERT_PORTS:
            raise StackError(f"variant {name!r} is the name of a part of the stack: rename it")
    return names


def _start(info: StackInfo, binaries: Binaries) -> None:
    # Slow starters first, so they come up while the others are being waited for.
    launch(info, "temporal", temporal_argv(info, binaries.temporal))
    servers = ["stable", "canary", *(info.variants if info.router != "flagd" else [])]
    for version in servers:
        launch(info, version, demo_argv(info, version))
    launch(info, "prometheus", prometheus_argv(info, binaries.prometheus))
    if binaries.alertmanager is not None and info.alertmanager_url is not None:
        launch(info, "alertmanager", alertmanager_argv(info, binaries.alertmanager))
    for version in servers:
        await_demo(info, version)
    start_haproxy(info, binaries.haproxy)
    if binaries.envoy is not None:
        start_envoy(info, binaries.envoy)
    loadgen = launch(info, "loadgen", loadgen_argv(info))
    loadgen_started = time.monotonic()
    await_prometheus(info)
    await_temporal(info, binaries.temporal)
    if info.worker_metrics is not None:
        start_worker(info)
    if info.alertmanager_url is not None:
        await_alertmanager(info)
        start_alert_receiver(info)
    # Ready once it serves its task outcomes, and has been sending for a second.
    tasks = info.ports.get("tasks")
    await_ready(
        info,
        "loadgen",
        lambda: (
            time.monotonic() - loadgen_started > 1.0 and (tasks is None or listens(loadgen, tasks))
        ),
    )
