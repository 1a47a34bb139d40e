"""The dev stack's configuration files: haproxy.cfg, prometheus.yml and a demo plan."""

from __future__ import annotations

from pathlib import Path

from demo.configs import HAProxyLayout, demo_plan, haproxy_config, plan_yaml, prometheus_config
from starter.processes import LOCALHOST, StackError
from starter.stackinfo import StackInfo, save


def render_haproxy(info: StackInfo) -> str:
    """The dev stack's haproxy.cfg."""
    ports = info.ports
    return haproxy_config(
        HAProxyLayout(
            app_bind=f"{LOCALHOST}:{ports['app']}",
            exporter_bind=f"{LOCALHOST}:{ports['haproxy_metrics']}",
            admin_tcp_bind=f"{LOCALHOST}:{ports['haproxy_admin']}",
            stable_address=f"{LOCALHOST}:{ports['stable']}",
            canary_address=f"{LOCALHOST}:{ports['canary']}",
            admin_socket=info.haproxy_socket,
            match_map=info.haproxy_match_map,
        )
    )


def render_prometheus(info: StackInfo) -> str:
    """The dev stack's prometheus.yml: HAProxy's exporter, both demo versions, the worker."""
    ports = info.ports
    targets = {
        "haproxy": [f"{LOCALHOST}:{ports['haproxy_metrics']}"],
        "demo": [f"{LOCALHOST}:{ports['stable']}", f"{LOCALHOST}:{ports['canary']}"],
        "worker": [info.worker_metrics] if info.worker_metrics else [],
    }
    return prometheus_config(targets)


def write_configs(info: StackInfo) -> None:
    """Write the stack's configs, its demo plan and its stack.json into its folder."""
    dir = info.path
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
        (dir / "prometheus.yml").write_text(render_prometheus(info))
        Path(info.plan_file).write_text(plan_yaml(plan))
    except OSError as error:
        raise StackError(
            f"cannot write the dev stack's files in {dir} ({error.strerror or error}):"
            " choose a folder you can write with --dir"
        ) from None
    save(info)
