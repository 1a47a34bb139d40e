"""deploy/: the production compose file, the rules and the dashboard, checked offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.processes import LOCALHOST, choose_ports
from plans.runtime.metric_names import EXPORTED, HISTOGRAMS
from plans.runtime.visibility import ROLLOUT_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.production.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "rollouts.json"
SECRETS = {"POSTGRES_PASSWORD": "postgres-secret", "GRAFANA_ADMIN_PASSWORD": "grafana-secret"}
# A metric of ours as PromQL names it (recording rules' names have colons, so never match).
OUR_METRIC = re.compile(r"\brollout_[a-z_]+")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False
    )


def _exported_series() -> set[str]:
    series = set(EXPORTED)
    for histogram in HISTOGRAMS:
        series |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return series


def _compose_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data["services"]  # type: ignore[no-any-return]


def test_promtool_checks_the_rules_and_the_prometheus_config() -> None:
    promtool = _tool("promtool")
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    checked = _run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    """rules.test.yml: a rollback fires RolloutRolledBack, also as a brand-new series, and
    resolves; restores that fail and a long approval wait fire theirs."""
    promtool = _tool("promtool")
    tested = _run(promtool, "test", "rules", str(DEPLOY / "prometheus" / "rules.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = _tool("amtool")
    checked = _run(amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_name_only_metrics_the_worker_exports() -> None:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in exprs for name in OUR_METRIC.findall(expr)}
    assert named and named <= _exported_series(), named - _exported_series()
    alerts = {rule.get("alert") for group in rules["groups"] for rule in group["rules"]}
    assert {"RolloutRolledBack", "RolloutRestoreFailing", "RolloutAwaitingApprovalTooLong"} <= (
        alerts
    )


def test_the_dashboard_loads_and_names_only_metrics_the_worker_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    named = {name for expr in exprs for name in OUR_METRIC.findall(expr)}
    exported = _exported_series()
    assert named <= exported, f"not exported by the worker: {sorted(named - exported)}"
    # Every metric the worker exports is on the dashboard.
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in named}
    assert shown == set(EXPORTED)
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert "Canary weight" in titles and "Gate values: canary vs stable" in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_docker_compose_validates_the_production_file() -> None:
    compose = _tool("docker-compose")
    checked = _run(compose, "-f", str(COMPOSE), "config", "-q", env=_compose_env(**SECRETS))
    assert checked.returncode == 0, checked.stderr


def test_the_production_file_says_which_secret_is_missing() -> None:
    compose = _tool("docker-compose")
    env = _compose_env(GRAFANA_ADMIN_PASSWORD="grafana-secret")
    checked = _run(compose, "-f", str(COMPOSE), "config", "-q", env=env)
    assert checked.returncode != 0
    assert "set POSTGRES_PASSWORD" in checked.stderr


def test_the_production_stack_has_every_part(services: dict[str, Any]) -> None:
    assert {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "worker",
        "prometheus",
        "alertmanager",
        "alerts",
        "grafana",
    } <= set(services)
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["command"] == ["python", "-m", "worker"]
    assert worker["environment"]["ROLLOUT_WORKER_METRICS"] == "0.0.0.0:9464"
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    assert "./grafana/rollouts.json:/var/lib/grafana/dashboards/rollouts.json:ro" in mounts
    for mount in mounts:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), f"{source} is mounted but missing"


def test_alertmanager_reaches_the_receiver_over_tls_with_a_token_file(
    services: dict[str, Any],
) -> None:
    receiver, alertmanager = services["alerts"], services["alertmanager"]
    assert "python -m starter alerts serve --listen 0.0.0.0:9095" in " ".join(receiver["command"])
    assert "ports" not in receiver  # only Alertmanager reaches it, on the stack's network
    env = receiver["environment"]
    assert env["ROLLOUT_ALERT_TLS_CERT"] == "/run/secrets/alerts_tls_cert"
    assert env["ROLLOUT_ALERT_TLS_KEY"] == "/run/secrets/alerts_tls_key"
    assert {"rollout_alert_token", "alerts_tls_cert", "alerts_tls_key"} <= set(receiver["secrets"])
    assert "/run/secrets/rollout_alert_token" in " ".join(receiver["command"])

    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    [rollouts] = [r for r in config["receivers"] if r["name"] == "rollouts"]
    [webhook] = rollouts["webhook_configs"]
    assert webhook["url"] == "https://alerts:9095/alerts"
    http = webhook["http_config"]
    assert http["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/rollout_alert_token",
    }
    assert http["tls_config"] == {"ca_file": "/run/secrets/alerts_tls_ca", "server_name": "alerts"}
    assert {"rollout_alert_token", "alerts_tls_ca"} <= set(alertmanager["secrets"])
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "rollouts"]
    assert route["continue"] is True  # people are still paged
    assert 'alertname!~"Rollout.*"' in route["matchers"]  # the rollouts' own alerts never act
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in ("rollout_alert_token", "alerts_tls_cert", "alerts_tls_key", "alerts_tls_ca"):
        assert compose["secrets"][name]["file"].startswith("./secrets/")


def test_temporal_is_the_server_image_on_a_schema_the_admin_tools_set_up(
    services: dict[str, Any],
) -> None:
    # temporalio/auto-setup is for tests; the server image sets up nothing by itself.
    temporal, schema = services["temporal"], services["temporal-schema"]
    version = temporal["image"].removeprefix("temporalio/server:")
    assert temporal["image"] == f"temporalio/server:{version}"
    for setup in ("temporal-schema", "temporal-setup"):
        # the admin tools of the server's own version
        assert services[setup]["image"].startswith(f"temporalio/admin-tools:{version}-")
    assert temporal["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    assert schema["depends_on"]["postgresql"] == {"condition": "service_healthy"}
    assert schema["environment"]["SQL_PLUGIN"] == temporal["environment"]["DB"]
    assert schema["environment"]["SQL_HOST"] == temporal["environment"]["POSTGRES_SEEDS"]
    assert schema["environment"]["SQL_USER"] == temporal["environment"]["POSTGRES_USER"]
    assert schema["environment"]["SQL_PASSWORD"] == temporal["environment"]["POSTGRES_PWD"]
    assert services["temporal-setup"]["depends_on"]["temporal"] == {"condition": "service_healthy"}
    assert services["worker"]["depends_on"]["temporal-setup"] == {
        "condition": "service_completed_successfully"
    }
    for setup, script in (("temporal-schema", "schema.sh"), ("temporal-setup", "namespace.sh")):
        [mount] = services[setup]["volumes"]
        assert mount == f"./temporal/{script}:/setup/{script}:ro"
        assert services[setup]["entrypoint"] == ["sh", f"/setup/{script}"]
        assert _run("sh", "-n", str(DEPLOY / "temporal" / script)).returncode == 0


def test_the_schema_script_sets_up_both_databases_once_and_upgrades_them() -> None:
    script = (DEPLOY / "temporal" / "schema.sh").read_text()
    assert "temporal:temporal temporal_visibility:visibility" in script
    # update-schema first: on a database set up before, it is the whole job
    assert script.index("update-schema") < script.index("create-database")
    assert "setup-schema --version 0.0" in script


def test_the_workers_and_the_receiver_run_the_production_image(services: dict[str, Any]) -> None:
    for name in ("worker", "alerts"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install --no-cache-dir --require-hashes -r requirements/runtime.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    # Every package the install names is copied (the CLI imports them all).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert f"COPY {package.rstrip('*')} " in dockerfile, package


def test_the_setup_creates_every_search_attribute_rollouts_publish() -> None:
    script = (DEPLOY / "temporal" / "namespace.sh").read_text()
    created = dict(re.findall(r"(Rollout\w+):(Keyword|Int)", script))
    wanted = {key.name: key.indexed_value_type.name.title() for key in ROLLOUT_ATTRIBUTES}
    assert created == wanted


@pytest.mark.integration
def test_the_namespace_script_sets_up_a_real_server_and_can_run_again(tmp_path: Path) -> None:
    # The script as the admin tools run it, against the Temporal CLI's dev server.
    temporal = Path(sys.executable).parent / "temporal"
    if not temporal.exists():
        pytest.skip("the Temporal CLI is missing: run scripts/bootstrap.sh")
    port, http_port, metrics_port = choose_ports({"a": 0, "b": 0, "c": 0}).values()
    argv = [str(temporal), "server", "start-dev", "--headless", "--ip", LOCALHOST, "--port"]
    argv += [str(port), "--http-port", str(http_port), "--metrics-port", str(metrics_port)]
    argv += ["--db-filename", str(tmp_path / "t.db"), "--log-level", "error"]
    server = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = {
            **os.environ,
            "PATH": f"{temporal.parent}:{os.environ['PATH']}",
            "TEMPORAL_ADDRESS": f"{LOCALHOST}:{port}",
            "TEMPORAL_NAMESPACE": "rollouts",
        }
        script = str(DEPLOY / "temporal" / "namespace.sh")
        first = _run("sh", script, env=env)
        assert first.returncode == 0, first.stderr
        again = _run("sh", script, env=env)
        assert again.returncode == 0, again.stderr
        assert "namespace rollouts exists" in again.stdout
        listed = _run(
            str(temporal),
            "operator",
            "search-attribute",
            "list",
            "--output",
            "json",
            "--address",
            f"{LOCALHOST}:{port}",
            "--namespace",
            "rollouts",
            env=env,
        )
        assert listed.returncode == 0, listed.stderr
        custom = json.loads(listed.stdout)["customAttributes"]
        for key in ROLLOUT_ATTRIBUTES:
            assert key.name in custom
        described = _run(
            str(temporal),
            "operator",
            "namespace",
            "describe",
            "--output",
            "json",
            "--address",
            f"{LOCALHOST}:{port}",
            "--namespace",
            "rollouts",
            env=env,
        )
        retention = json.loads(described.stdout)["config"]["workflowExecutionRetentionTtl"]
        assert retention in ("2592000s", "720h0m0s")
    finally:
        server.terminate()
        server.wait(timeout=30)
