"""docker-compose's config files, rendered by the demo package exactly like the dev stack's.

``python -m demo.compose`` rewrites them; ``python -m demo.compose --check`` exits 1 when a
committed file differs from what the generator produces.
"""

from __future__ import annotations

from pathlib import Path

from demo.configs import EnvoyLayout, HAProxyLayout, envoy_config, haproxy_config
from demo.example_plans import (
    blue_green_plan,
    demo_plan,
    envoy_demo_plan,
    flag_definition,
    flag_json,
    flagd_demo_plan,
    plan_yaml,
)
from demo.monitoring import alert_rules, alertmanager_config, prometheus_config

FOLDER = Path(__file__).parent
# Ports inside the compose network; docker-compose.yml publishes them on 127.0.0.1.
APP_PORT = 8080
EXPORTER_PORT = 8405
ADMIN_PORT = 9999
DEMO_PORT = 8000
PROMETHEUS_PORT = 9090
WORKER_METRICS_PORT = 9464
TASKS_PORT = 8090
PREVIEW_PORT = 8083
# flagd mode: the flag file lives in the `flags` volume, seeded from flags.json here.
FLAG_FILE = "/flags/flags.json"
# Envoy runs in the worker container's network namespace (compose profile "envoy"): its admin
# API binds the loopback there, which only the worker's activities can reach.
ENVOY_APP_PORT = 10000
ENVOY_ADMIN_PORT = 9901
ALERTMANAGER_PORT = 9093
ALERTS_PORT = 9095
# The receiver's bearer token inside the compose network, where only Alertmanager reaches the
# receiver (its port is not published). Change it in both places for anything but the demo.
ALERT_TOKEN = "change-me-demo-alert-token"


def haproxy_cfg() -> str:
    """haproxy.cfg for the haproxy container: servers are the stable and canary containers."""
    return haproxy_config(
        HAProxyLayout(
            app_bind=f"*:{APP_PORT}",
            exporter_bind=f"*:{EXPORTER_PORT}",
            admin_tcp_bind=f"0.0.0.0:{ADMIN_PORT}",
            stable_address=f"stable:{DEMO_PORT}",
            canary_address=f"canary:{DEMO_PORT}",
            admin_socket="/var/lib/haproxy/admin.sock",
            docker_dns=True,
            preview_bind=f"*:{PREVIEW_PORT}",
        )
    )


def envoy_yaml() -> str:
    """envoy.yaml for the envoy container: the demo's clusters by their container names."""
    return envoy_config(
        EnvoyLayout(
            app_bind=f"0.0.0.0:{ENVOY_APP_PORT}",
            admin_bind=f"127.0.0.1:{ENVOY_ADMIN_PORT}",
            stable_address=f"stable:{DEMO_PORT}",
            canary_address=f"canary:{DEMO_PORT}",
            docker_dns=True,
        )
    )


def prometheus_yml() -> str:
    """prometheus.yml for the prometheus container."""
    return prometheus_config(
        {
            "haproxy": [f"haproxy:{EXPORTER_PORT}"],
            "demo": [f"stable:{DEMO_PORT}", f"canary:{DEMO_PORT}"],
            "worker": [f"worker:{WORKER_METRICS_PORT}"],
        },
        rule_files=["/etc/prometheus/alert-rules.yml"],
        alertmanagers=[f"alertmanager:{ALERTMANAGER_PORT}"],
    )


def alertmanager_yml() -> str:
    """alertmanager.yml for the alertmanager container: every alert to the alerts container."""
    return alertmanager_config(f"http://alerts:{ALERTS_PORT}/alerts", token=ALERT_TOKEN)


def plan() -> str:
    """The demo plan as the worker container sees the stack (activities run there)."""
    return plan_yaml(
        demo_plan(
            runtime_api=f"tcp://haproxy:{ADMIN_PORT}",
            prometheus_url=f"http://prometheus:{PROMETHEUS_PORT}",
            tasks_url=f"http://loadgen:{TASKS_PORT}/tasks",
        )
    )


def blue_green() -> str:
    """The demo plan as blue-green, for the worker container."""
    return plan_yaml(
        blue_green_plan(
            runtime_api=f"tcp://haproxy:{ADMIN_PORT}",
            prometheus_url=f"http://prometheus:{PROMETHEUS_PORT}",
            preview_url=f"http://127.0.0.1:{PREVIEW_PORT}/",
        )
    )


def flagd_plan() -> str:
    """The demo plan moving the demo services' feature flag (``DEMO_FLAG_FILE`` set)."""
    return plan_yaml(
        flagd_demo_plan(
            FLAG_FILE,
            prometheus_url=f"http://prometheus:{PROMETHEUS_PORT}",
            tasks_url=f"http://loadgen:{TASKS_PORT}/tasks",
        )
    )


def plan_envoy() -> str:
    """The demo plan moving Envoy, as the worker container sees it (Envoy on its loopback)."""
    return plan_yaml(
        envoy_demo_plan(
            admin=f"http://127.0.0.1:{ENVOY_ADMIN_PORT}",
            prometheus_url=f"http://prometheus:{PROMETHEUS_PORT}",
            tasks_url=f"http://loadgen-envoy:{TASKS_PORT}/tasks",
        )
    )


def render() -> dict[str, str]:
    """Every generated file's name and content."""
    return {
        "haproxy.cfg": haproxy_cfg(),
        "prometheus.yml": prometheus_yml(),
        "plan.yaml": plan(),
        "plan-blue-green.yaml": blue_green(),
        "plan-flagd.yaml": flagd_plan(),
        "flags.json": flag_json(flag_definition()),
        "envoy.yaml": envoy_yaml(),
        "plan-envoy.yaml": plan_envoy(),
        "alert-rules.yml": alert_rules(),
        "alertmanager.yml": alertmanager_yml(),
    }


def stale(folder: Path = FOLDER) -> list[str]:
    """Names of the files in folder that differ from the generator's output (or are missing)."""
    stale_names = []
    for name, text in render().items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            stale_names.append(name)
    return stale_names


def write(folder: Path = FOLDER) -> list[Path]:
    """Write every generated file into folder; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render().items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths
