"""What a dev stack is and where it answers: the description kept in ``DIR/stack.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from demo.configs import BACKEND, FLAG
from devstack.processes import LOCALHOST, StackError

NAMESPACE = "default"
TASK_QUEUE = "rollouts"
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
    "tasks": 8090,
    "preview": 8083,
    # Only with `--router envoy`: the app through Envoy, and Envoy's admin API.
    "envoy_app": 10000,
    "envoy_admin": 9901,
}
ENVOY_PORTS = ("envoy_app", "envoy_admin")
ROUTERS = ("haproxy", "envoy", "flagd")
RouterKind = Literal["haproxy", "envoy", "flagd"]
# How often the demo services look at the flag file in flagd mode (the provider's poll).
FLAG_POLL_MS = 500
# With `rollout dev up --alerts` only: Alertmanager and the alert receiver.
ALERT_PORTS = {"alertmanager": 9093, "alerts": 9095}
ALERT_ROLES = tuple(ALERT_PORTS)
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
    envoy_url: str | None = Field(default=None, description="the app through Envoy, ending in /")
    envoy_admin: str | None = Field(default=None, description="http://127.0.0.1:PORT, Envoy's")
    stable_url: str = Field(description="the stable demo service directly, ending in /")
    canary_url: str = Field(description="the canary demo service directly, ending in /")
    worker_metrics: str | None = Field(default=None, description="host:port, when a worker runs")
    tasks_url: str | None = Field(
        default=None, description="the demo's task outcomes per version (GET, JSON)"
    )
    plan_file: str = Field(description="a demo rollout plan pointing at this stack")
    preview_url: str | None = Field(
        default=None, description="HAProxy's preview route: always the canary, ending in /"
    )
    blue_green_plan_file: str | None = Field(
        default=None, description="the demo plan as blue-green, when the stack has a preview"
    )
    router: RouterKind = Field(
        default="haproxy",
        description=(
            "what the demo plan moves: HAProxy's weights, Envoy's (the load goes through"
            " Envoy), or (flagd) a feature flag that both demo services evaluate per user"
            " behind HAProxy's equal weights"
        ),
    )
    flag_file: str | None = Field(default=None, description="flagd: the flag file the plan moves")
    flag_key: str | None = Field(default=None, description="flagd: the flag's key in it")
    flag_poll_ms: int | None = Field(
        default=None,
        description="flagd: how often the demo services look at the file; a shift shows within it",
    )
    alertmanager_url: str | None = Field(
        default=None, description="the stack's Alertmanager, with --alerts (no trailing slash)"
    )
    alerts_url: str | None = Field(
        default=None, description="the rollout alert receiver's webhook, with --alerts"
    )
    variants: list[str] = Field(
        default_factory=list,
        description=(
            "an experiment's further demo variants beside stable and canary: with haproxy each"
            " is a demo service of its own, a server of the backend at weight 0 (its port under"
            " its name in ports; with envoy also a cluster of its route at weight 0); with"
            " flagd each is a variant of the flag both services serve"
        ),
    )
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

    @property
    def app_url(self) -> str:
        """The app through the stack's router: where the load generator sends its requests."""
        return self.envoy_url if self.router == "envoy" and self.envoy_url else self.haproxy_url

    def version_urls(self, version: str) -> list[str]:
        """The demo services that serve ``version``, each ending in /."""
        if self.router == "flagd":
            return [self.stable_url, self.canary_url]
        if version in self.variants:
            return [f"http://{LOCALHOST}:{self.ports[version]}/"]
        return [self.canary_url if version == "canary" else self.stable_url]

    @property
    def haproxy_match_map(self) -> str:
        """The map file whose entries send requests to the canary by header or cookie."""
        return str(self.path / "app-canary.map")

    @property
    def alert_token_file(self) -> Path:
        """The bearer token Alertmanager sends the receiver, with --alerts (mode 600)."""
        return self.path / "alert-token"


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
    except OSError as error:
        raise StackError(
            f"cannot read {path} ({error.strerror or error}): choose another folder with --dir"
        ) from None


def describe(info: StackInfo) -> str:
    """A few lines for people: where each part of the stack answers."""
    lines = [
        f"Temporal      {info.temporal_address} (namespace {info.namespace})",
        f"Temporal UI   {info.ui_url}",
        f"App (HAProxy) {info.haproxy_url}",
        f"HAProxy API   {info.haproxy_admin_tcp} and {info.haproxy_socket}",
    ]
    if info.router == "envoy":
        lines += [f"App (Envoy)   {info.envoy_url}", f"Envoy admin   {info.envoy_admin}"]
    lines += [
        f"Prometheus    {info.prometheus_url}",
        f"Stable        {info.stable_url}",
        f"Canary        {info.canary_url}",
        f"Task outcomes {info.tasks_url or 'none'}",
        f"Demo plan     {info.plan_file}",
        f"Preview       {info.preview_url or 'none'} (always the canary)",
        f"Blue-green    {info.blue_green_plan_file or 'none'}",
        f"Alertmanager  {info.alertmanager_url or 'none (rollout dev up --alerts)'}",
        f"Alerts in     {info.alerts_url or 'none'}",
        f"Logs          {info.path / 'logs'}",
    ]
    if info.router == "flagd":
        flag = f"{info.flag_key} in {info.flag_file}, read every {info.flag_poll_ms} ms"
        lines.insert(-1, f"Flag (flagd)  {flag}")
    return "\n".join(lines)


def dump(info: StackInfo) -> dict[str, Any]:
    """stack.json's content as a dict (for printing as JSON)."""
    data: dict[str, Any] = json.loads(info.model_dump_json())
    return data


def stack_info(
    dir: Path,
    ports: dict[str, int],
    router: RouterKind = "haproxy",
    variants: Sequence[str] = (),
) -> StackInfo:
    """The description a stack in ``dir`` on these ports would have; nothing is started.

    With ``router`` envoy the load goes through Envoy and the demo plan moves Envoy's weights.
    ``variants`` are an experiment's further demo variants (see ``StackInfo.variants``).
    """
    socket = dir / "haproxy.sock"
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise StackError(f"{dir} is too deep for HAProxy's unix socket: use a shorter folder")
    worker = f"{LOCALHOST}:{ports['worker_metrics']}" if "worker_metrics" in ports else None
    metrics = {"haproxy": ports["haproxy_metrics"], "stable": ports["stable"]}
    metrics |= {"canary": ports["canary"], "temporal": ports["temporal_metrics"]}
    if "worker_metrics" in ports:
        metrics["worker"] = ports["worker_metrics"]
    if router != "flagd":
        metrics |= {name: ports[name] for name in variants}
    envoy = router == "envoy"
    return StackInfo(
        dir=str(dir),
        router=router,
        envoy_url=f"http://{LOCALHOST}:{ports['envoy_app']}/" if envoy else None,
        envoy_admin=f"http://{LOCALHOST}:{ports['envoy_admin']}" if envoy else None,
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
        tasks_url=f"http://{LOCALHOST}:{ports['tasks']}/tasks" if "tasks" in ports else None,
        plan_file=str(dir / "plan.yaml"),
        preview_url=f"http://{LOCALHOST}:{ports['preview']}/" if "preview" in ports else None,
        blue_green_plan_file=(
            str(dir / "plan-blue-green.yaml")
            if "preview" in ports and router == "haproxy"
            else None
        ),
        flag_file=str(dir / "flags.json") if router == "flagd" else None,
        flag_key=FLAG if router == "flagd" else None,
        flag_poll_ms=FLAG_POLL_MS if router == "flagd" else None,
        alertmanager_url=(
            f"http://{LOCALHOST}:{ports['alertmanager']}" if "alertmanager" in ports else None
        ),
        alerts_url=f"http://{LOCALHOST}:{ports['alerts']}/alerts" if "alerts" in ports else None,
        variants=list(variants),
        ports=ports,
        metrics=metrics,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def load_if_any(dir: Path) -> StackInfo | None:
    """The description of the stack in ``dir``, or None when there is none to read."""
    try:
        return load(dir)
    except StackError:
        return None


def save(info: StackInfo) -> None:
    """Write ``DIR/stack.json`` whole, so that a reader never sees half of it."""
    # Write then rename, so a reader never sees half a file; the temporary name is this
    # process's own, so two commands saving at once (two `dev down`s) never share one.
    path = stack_file(info.path)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(info.model_dump_json(indent=2) + "\n")
        os.replace(temp, path)
    except OSError as error:
        raise StackError(
            f"cannot write {path} ({error.strerror or error}):"
            " choose a folder you can write with --dir"
        ) from None
