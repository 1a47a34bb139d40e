"""deploy/: the production compose file, the rules and the dashboard, checked offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from plans.metric_names import EXPORTED, HISTOGRAMS
from plans.visibility import ROLLOUT_ATTRIBUTES

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
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "worker",
        "prometheus",
        "alertmanager",
        "alerts",
        "grafana",
    } <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
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


def test_the_setup_creates_every_search_attribute_rollouts_publish(
    services: dict[str, Any],
) -> None:
    script = " ".join(services["temporal-setup"]["command"])
    created = dict(re.findall(r"(Rollout\w+):(Keyword|Int)", script))
    wanted = {key.name: key.indexed_value_type.name.title() for key in ROLLOUT_ATTRIBUTES}
    assert created == wanted
