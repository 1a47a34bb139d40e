"""The configs `rollout dev up --alerts` writes, checked by promtool and amtool too."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from demo.monitoring import ALERT_NAME, alert_rules
from devstack.configs import render_prometheus, write_configs
from devstack.info import ALERT_PORTS, DEFAULT_PORTS, stack_info


def test_without_alerts_prometheus_has_no_alerting(tmp_path: Path) -> None:
    info = stack_info(tmp_path, dict(DEFAULT_PORTS))
    assert info.alertmanager_url is None and info.alerts_url is None
    config = yaml.safe_load(render_prometheus(info))
    assert "alerting" not in config and "rule_files" not in config


def test_with_alerts_the_stack_writes_rules_routing_and_a_private_token(tmp_path: Path) -> None:
    info = stack_info(tmp_path, {**DEFAULT_PORTS, **ALERT_PORTS})
    write_configs(info)
    prometheus = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == [str(tmp_path / "alert-rules.yml")]
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:9093"]
    alertmanager = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert alertmanager["route"]["group_wait"] == "1s"
    [webhook] = alertmanager["receivers"][0]["webhook_configs"]
    assert webhook["url"] == info.alerts_url == "http://127.0.0.1:9095/alerts"
    authorization = webhook["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials_file": str(info.alert_token_file)}
    token = info.alert_token_file.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(info.alert_token_file.stat().st_mode) == 0o600
    # Written again (dev up after dev down): the same token, which Alertmanager still reads.
    write_configs(info)
    assert info.alert_token_file.read_text().strip() == token


def test_the_rule_names_the_demo_service_as_critical() -> None:
    [group] = yaml.safe_load(alert_rules())["groups"]
    [rule] = group["rules"]
    assert rule["alert"] == ALERT_NAME
    assert rule["labels"] == {"severity": "critical", "service": "demo"}
    assert 'server="canary",code="5xx"' in rule["expr"] and rule["expr"].endswith("> 0.05")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (prometheus) is missing")
def test_promtool_accepts_the_dev_stack_config_and_rules(tmp_path: Path) -> None:
    write_configs(stack_info(tmp_path, {**DEFAULT_PORTS, **ALERT_PORTS}))
    for argv in (["check", "rules", "alert-rules.yml"], ["check", "config", "prometheus.yml"]):
        checked = subprocess.run(
            ["promtool", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool (prometheus-alertmanager)")
def test_amtool_accepts_the_dev_stack_alertmanager_config(tmp_path: Path) -> None:
    write_configs(stack_info(tmp_path, {**DEFAULT_PORTS, **ALERT_PORTS}))
    checked = subprocess.run(
        ["amtool", "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
