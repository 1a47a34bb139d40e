"""The dev stack's fleet (`rollout dev up --targets a,b,c`): one HAProxy backend per target.

Beside the stack's own parts, each target gets its own stable and canary demo service and
its own HAProxy frontend and backend (named after the target) in one fleet HAProxy, and a
load generator sending it traffic. A fleet Prometheus scrapes them with a ``region`` label
per target, so one fleet plan judges each target on its own numbers (``$region``). Every
process is recorded in ``DIR/stack.json`` like the others, so `rollout dev down` stops it.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from demo.configs import CANARY_SERVER, HEADER, STABLE_SERVER
from demo.example_plans import plan_yaml
from devstack.info import StackInfo
from devstack.parts import await_ready, launch, server_argv
from devstack.processes import LOCALHOST, StackError, choose_ports, http_ok, listens, tcp_open

FLEET_FILE = "fleet.json"
TARGET_RPS = 10
MAX_INSTANCE_PAIRS = 4  # more targets than this share demo services, round robin
DEFAULT_TARGETS = ("staging", "eu", "us-west", "us-east")


class FleetTargetParts(BaseModel):
    """Where one target answers: its frontend, and the demo services behind its backend."""

    app_port: int
    stable_port: int
    canary_port: int

    @property
    def canary_url(self) -> str:
        return f"http://{LOCALHOST}:{self.canary_port}/"

    @property
    def app_url(self) -> str:
        return f"http://{LOCALHOST}:{self.app_port}/"


class FleetStack(BaseModel):
    """The fleet's parts, kept in ``DIR/fleet.json``."""

    targets: dict[str, FleetTargetParts]
    haproxy_admin_tcp: str
    haproxy_metrics_port: int
    prometheus_url: str
    plan_file: str

    def waves(self) -> list[dict[str, Any]]:
        """The demo's waves: the first target alone, the second alone, then the rest together."""
        names = list(self.targets)
        waves: list[dict[str, Any]] = [{"targets": [n]} for n in names[:2]]
        if names[2:]:
            rest = names[2:]
            waves.append({"targets": rest, "max_parallel": max(2, len(rest) // 2)})
        return waves


def parse_targets(text: str) -> list[str]:
    """``staging,eu,us-west`` as names; a clear error for an empty or repeated one."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise StackError(f"--targets {text!r}: name each target, separated by commas")
    if len(set(names)) != len(names):
        raise StackError(f"--targets {text!r}: each target once")
    return names


def fleet_plan(fleet: FleetStack, *, on_target_failure: str = "halt") -> dict[str, Any]:
    """A release of the demo service to every target, judged per target on its own errors."""
    failed = 'sum(rate(demo_requests_total{region="$region",version="$canary",code=~"5.."}[10s]))'
    every = 'sum(rate(demo_requests_total{region="$region",version="$canary"}[10s]))'
    return {
        "service": "demo",
        "version": "canary",
        "stable": STABLE_SERVER,
        "canary": CANARY_SERVER,
        "router": {"kind": "haproxy", "runtime_api": fleet.haproxy_admin_tcp, "backend": "$region"},
        "metrics": {"kind": "prometheus", "url": fleet.prometheus_url},
        "gates": [
            {
                "name": "error-rate",
                "query": f"({failed} or vector(0)) / {every}",
                "max": 0.05,
                "failure_limit": 2,
                "on_inconclusive": "ignore",
                "unit": "ratio",
            }
        ],
        "stages": [
            {"name": "canary-20", "weight": 20, "bake": "10s", "check_every": "2s"},
            {"name": "full", "weight": 100, "bake": "10s", "check_every": "2s"},
        ],
        "targets": {name: {"placeholders": {"region": name}} for name in fleet.targets},
        "waves": fleet.waves(),
        "on_target_failure": on_target_failure,
    }


def haproxy_config(fleet: FleetStack) -> str:
    lines = [
        HEADER.rstrip(),
        "global",
        "    log stdout format raw local0 notice",
        f"    stats socket ipv4@{fleet.haproxy_admin_tcp.removeprefix('tcp://')} level admin",
        "    stats timeout 30s",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "",
    ]
    for name, parts in fleet.targets.items():
        lines += [
            f"frontend fe-{name}",
            f"    bind {LOCALHOST}:{parts.app_port}",
            f"    default_backend {name}",
            "",
            f"backend {name}",
            "    balance roundrobin",
            "    option httpchk GET /healthz",
            "    default-server check inter 1s fall 2 rise 1",
            f"    server {STABLE_SERVER} {LOCALHOST}:{parts.stable_port} weight 100",
            f"    server {CANARY_SERVER} {LOCALHOST}:{parts.canary_port} weight 0",
            "",
        ]
    lines += [
        "frontend exporter",
        f"    bind {LOCALHOST}:{fleet.haproxy_metrics_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "",
    ]
    return "\n".join(lines)


def prometheus_config(fleet: FleetStack) -> str:
    jobs = [
        {
            "job_name": f"demo-{name}",
            "static_configs": [
                {
                    "targets": [
                        f"{LOCALHOST}:{parts.stable_port}",
                        f"{LOCALHOST}:{parts.canary_port}",
                    ],
                    "labels": {"region": name},
                }
            ],
        }
        for name, parts in fleet.targets.items()
    ]
    jobs.append(
        {
            "job_name": "fleet-haproxy",
            "static_configs": [{"targets": [f"{LOCALHOST}:{fleet.haproxy_metrics_port}"]}],
        }
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": jobs,
    }
    return HEADER + yaml.safe_dump(config, sort_keys=False)


def up_fleet(info: StackInfo, targets: list[str], haproxy: str, prometheus: str) -> FleetStack:
    """Start the fleet's processes beside a stack that is up; wait until each answers."""
    pairs = min(len(targets), MAX_INSTANCE_PAIRS)
    wanted = {"fleet_haproxy_admin": 0, "fleet_haproxy_metrics": 0, "fleet_prometheus": 0}
    for i in range(pairs):
        wanted |= {f"fleet_stable_{i}": 0, f"fleet_canary_{i}": 0}
    wanted |= {f"fleet_app_{name}": 0 for name in targets}
    taken = set(info.ports.values())
    ports = choose_ports({**{f"taken_{p}": p for p in taken}, **wanted})
    for role in list(ports):
        if role.startswith("taken_"):
            del ports[role]
    info.ports.update(ports)
    parts = {
        name: FleetTargetParts(
            app_port=ports[f"fleet_app_{name}"],
            stable_port=ports[f"fleet_stable_{i % pairs}"],
            canary_port=ports[f"fleet_canary_{i % pairs}"],
        )
        for i, name in enumerate(targets)
    }
    dir = info.path
    fleet = FleetStack(
        targets=parts,
        haproxy_admin_tcp=f"tcp://{LOCALHOST}:{ports['fleet_haproxy_admin']}",
        haproxy_metrics_port=ports["fleet_haproxy_metrics"],
        prometheus_url=f"http://{LOCALHOST}:{ports['fleet_prometheus']}",
        plan_file=str(dir / "fleet.yaml"),
    )
    (dir / "fleet-haproxy.cfg").write_text(haproxy_config(fleet), encoding="utf-8")
    (dir / "fleet-prometheus.yml").write_text(prometheus_config(fleet), encoding="utf-8")
    Path(fleet.plan_file).write_text(plan_yaml(fleet_plan(fleet)), encoding="utf-8")
    (dir / FLEET_FILE).write_text(fleet.model_dump_json(indent=2), encoding="utf-8")
    _start(info, fleet, pairs, haproxy, prometheus)
    return fleet


def _start(info: StackInfo, fleet: FleetStack, pairs: int, haproxy: str, prometheus: str) -> None:
    python = sys.executable
    for i in range(pairs):
        for version in ("stable", "canary"):
            port = info.ports[f"fleet_{version}_{i}"]
            name = f"fleet-{version}-{i}"
            launch(
                info,
                name,
                [python, "-m", "demo.service", "--port", str(port), "--version", version],
            )
    launch(
        info,
        "fleet-prometheus",
        [
            *server_argv(
                info, prometheus, "fleet-prometheus", "fleet_prometheus", "storage.tsdb.path"
            ),
            "--log.level=warn",
        ],
    )
    for i in range(pairs):
        for version in ("stable", "canary"):
            url = f"http://{LOCALHOST}:{info.ports[f'fleet_{version}_{i}']}/healthz"
            await_ready(
                info, f"fleet-{version}-{i}", partial(http_ok, url, header=("X-Version", version))
            )
    pid = launch(
        info, "fleet-haproxy", [haproxy, "-f", str(info.path / "fleet-haproxy.cfg"), "-db"]
    )
    admin = info.ports["fleet_haproxy_admin"]
    await_ready(
        info,
        "fleet-haproxy",
        lambda: all(listens(pid, p.app_port) for p in fleet.targets.values()) and tcp_open(admin),
    )
    for name, parts in fleet.targets.items():
        launch(
            info,
            f"fleet-loadgen-{name}",
            [python, "-m", "demo.loadgen", "--url", parts.app_url, "--rps", str(TARGET_RPS)],
        )
    await_ready(info, "fleet-prometheus", lambda: http_ok(f"{fleet.prometheus_url}/-/ready"))


def load_fleet(dir: Path) -> FleetStack:
    """The fleet of the stack in ``dir``; a clear error when it was started without one."""
    path = Path(dir) / FLEET_FILE
    if not path.exists():
        raise StackError(
            f"the dev stack in {dir} has no fleet: stop it with `rollout dev down`, then"
            " `rollout dev up --targets staging,eu,us-west,us-east`"
        )
    return FleetStack.model_validate_json(path.read_text(encoding="utf-8"))
