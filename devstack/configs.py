"""The dev stack's configuration files: haproxy.cfg, envoy.yaml, prometheus.yml, a demo plan.

With --alerts also Prometheus's alert rules, alertmanager.yml and the receiver's token.
"""

from __future__ import annotations

import os
import secrets
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
from devstack.info import StackInfo, save
from devstack.processes import LOCALHOST, StackError
from devstack.trust import write_dev_trust


def on_loopback(info: StackInfo) -> dict[str, str]:
    """Each part's ``host:port`` on the loopback interface, by the part's name."""
    return {part: f"{LOCALHOST}:{port}" for part, port in info.ports.items()}


def render_haproxy(info: StackInfo) -> str:
    """The dev stack's haproxy.cfg."""
    at = on_loopback(info)
    return haproxy_config(
        HAProxyLayout(
            app_bind=at["app"],
            exporter_bind=at["haproxy_metrics"],
            admin_tcp_bind=at["haproxy_admin"],
            stable_address=at["stable"],
            canary_address=at["canary"],
            admin_socket=info.haproxy_socket,
            preview_bind=at.get("preview"),
            # With a flag, both demo services serve both variants: HAProxy only spreads load.
            equal_weights=info.router == "flagd",
            match_map=info.haproxy_match_map,
            variants=tuple((name, at[name]) for name in _servers_of_their_own(info)),
        )
    )


def _servers_of_their_own(info: StackInfo) -> list[str]:
    """The further variants that run as demo services of their own (not with flagd)."""
    return [] if info.router == "flagd" else info.variants


def render_envoy(info: StackInfo) -> str:
    """The dev stack's envoy.yaml (its admin API on 127.0.0.1 only)."""
    at = on_loopback(info)
    return envoy_config(
        EnvoyLayout(
            app_bind=at["envoy_app"],
            admin_bind=at["envoy_admin"],
            stable_address=at["stable"],
            canary_address=at["canary"],
            variants=tuple((name, at[name]) for name in info.variants),
        )
    )


def render_prometheus(info: StackInfo) -> str:
    """The dev stack's prometheus.yml: HAProxy's exporter, both demo versions, the worker, Envoy."""
    at = on_loopback(info)
    targets = {
        "haproxy": [at["haproxy_metrics"]],
        "demo": [at["stable"], at["canary"], *(at[name] for name in _servers_of_their_own(info))],
        "worker": [info.worker_metrics] if info.worker_metrics else [],
    }
    paths: dict[str, str] = {}
    if info.router == "envoy":
        # Envoy's own counters (envoy_cluster_upstream_rq_xx...), served by its admin API.
        targets["envoy"] = [at["envoy_admin"]]
        paths["envoy"] = "/stats/prometheus"
    if info.alertmanager_url is None:
        return prometheus_config(targets, metrics_paths=paths)
    return prometheus_config(
        targets,
        metrics_paths=paths,
        rule_files=[str(info.path / "alert-rules.yml")],
        alertmanagers=[at["alertmanager"]],
    )


def render_alertmanager(info: StackInfo) -> str:
    """The dev stack's alertmanager.yml: every alert to the receiver, within a second."""
    assert info.alerts_url is not None
    return alertmanager_config(info.alerts_url, token_file=str(info.alert_token_file))


def write_alert_token(info: StackInfo) -> str:
    """The receiver's token: the one the folder keeps, else a new one (readable by you only)."""
    path = info.alert_token_file
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token


def write_configs(info: StackInfo) -> None:
    """Write the stack's configs, its demo plan and its stack.json into its folder."""
    dir = info.path
    if info.flag_file is not None:
        plan = flagd_demo_plan(info.flag_file, info.prometheus_url, info.tasks_url)
    elif info.router == "envoy" and info.envoy_admin:
        plan = envoy_demo_plan(info.envoy_admin, info.prometheus_url, info.tasks_url)
    else:
        plan = demo_plan(
            runtime_api=info.haproxy_admin_tcp,
            prometheus_url=info.prometheus_url,
            tasks_url=info.tasks_url,
            match_map=info.haproxy_match_map,
        )
    try:
        (dir / "logs").mkdir(parents=True, exist_ok=True)
        Path(info.haproxy_match_map).touch()  # empty: entries come through the runtime API
        (dir / "haproxy.cfg").write_text(render_haproxy(info))
        if info.router == "envoy":
            (dir / "envoy.yaml").write_text(render_envoy(info))
        (dir / "prometheus.yml").write_text(render_prometheus(info))
        Path(info.plan_file).write_text(plan_yaml(plan))
        if info.blue_green_plan_file is not None:
            blue_green = blue_green_plan(
                info.haproxy_admin_tcp, info.prometheus_url, preview_url=info.preview_url
            )
            Path(info.blue_green_plan_file).write_text(plan_yaml(blue_green))
        if info.flag_file is not None:
            # Everyone on the stable, as a stack that was stopped mid-rollout would not be.
            definition = flag_definition(extra=info.variants)
            Path(info.flag_file).write_text(flag_json(definition))
        # The worker verifies signed forward commands of the local user's keys.
        write_dev_trust(dir)
        if info.alertmanager_url is not None:
            (dir / "alert-rules.yml").write_text(alert_rules())
            (dir / "alertmanager.yml").write_text(render_alertmanager(info))
            write_alert_token(info)
    except OSError as error:
        raise StackError(
            f"cannot write the dev stack's files in {dir} ({error.strerror or error}):"
            " choose a folder you can write with --dir"
        ) from None
    save(info)
