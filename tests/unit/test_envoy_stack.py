"""The dev stack with ``--router envoy``: its description, its files and its command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import devstack
from devstack.configs import write_configs
from devstack.info import DEFAULT_PORTS, ENVOY_PORTS, describe, load, stack_info
from devstack.parts import envoy_argv, loadgen_argv
from plans import EnvoyRouter, HAProxyRouter, load_plan
from starter.cli import parser
from tests.unit.test_cli import no_temporal, run  # noqa: F401 (autouse fixture)

PORTS = {name: 41000 + i for i, name in enumerate(DEFAULT_PORTS)}


def test_an_envoy_stack_describes_envoy_and_sends_its_load_there(tmp_path: Path) -> None:
    info = stack_info(tmp_path, PORTS, "envoy")
    assert info.router == "envoy"
    assert info.envoy_url == f"http://127.0.0.1:{PORTS['envoy_app']}/"
    assert info.envoy_admin == f"http://127.0.0.1:{PORTS['envoy_admin']}"
    assert info.app_url == info.envoy_url
    argv = loadgen_argv(info)
    assert argv[argv.index("--url") + 1] == info.envoy_url
    text = describe(info)
    assert f"App (Envoy)   {info.envoy_url}" in text and "Envoy admin" in text


def test_a_haproxy_stack_is_as_before(tmp_path: Path) -> None:
    info = stack_info(tmp_path, PORTS)
    assert info.router == "haproxy" and info.envoy_url is None and info.envoy_admin is None
    assert info.app_url == info.haproxy_url
    assert "Envoy" not in describe(info)
    assert set(ENVOY_PORTS) <= set(DEFAULT_PORTS)


def test_an_envoy_stack_writes_envoy_yaml_and_an_envoy_plan(tmp_path: Path) -> None:
    info = stack_info(tmp_path, PORTS, "envoy")
    write_configs(info)
    config: dict[str, Any] = yaml.safe_load((tmp_path / "envoy.yaml").read_text())
    admin = config["admin"]["address"]["socket_address"]
    assert admin == {"address": "127.0.0.1", "port_value": PORTS["envoy_admin"]}
    assert [layer["name"] for layer in config["layered_runtime"]["layers"]] == ["static", "admin"]
    plan = load_plan(Path(info.plan_file))
    assert isinstance(plan.router, EnvoyRouter) and plan.router.admin == info.envoy_admin
    assert {g.preset for g in plan.gates} >= {"demo-error-rate", "demo-p95-latency"}
    assert load(tmp_path).router == "envoy"
    argv = envoy_argv(info, "envoy")
    assert argv[argv.index("-c") + 1] == str(tmp_path / "envoy.yaml")
    assert "--disable-hot-restart" in argv


def test_a_haproxy_stack_writes_no_envoy_config(tmp_path: Path) -> None:
    info = stack_info(tmp_path, PORTS)
    write_configs(info)
    assert not (tmp_path / "envoy.yaml").exists()
    assert isinstance(load_plan(Path(info.plan_file)).router, HAProxyRouter)


@pytest.mark.parametrize("command", [["dev", "up"], ["demo"]])
def test_router_option_defaults_to_haproxy_and_takes_envoy(command: list[str]) -> None:
    assert parser().parse_args(command).router == "haproxy"
    assert parser().parse_args([*command, "--router", "envoy"]).router == "envoy"


def test_an_unknown_router_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dev", "up", "--router", "nginx"]) == 2
    assert "invalid choice: 'nginx'" in capsys.readouterr().err


def test_dev_up_passes_the_router_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: dict[str, Any] = {}

    def up(dir: Path, **options: Any) -> devstack.StackInfo:
        asked.update(options)
        return stack_info(tmp_path, PORTS, options["router"])

    monkeypatch.setattr(devstack, "up", up)
    assert run(["dev", "up", "--dir", str(tmp_path), "--router", "envoy"]) == 0
    assert asked == {"router": "envoy", "alerts": False}


def test_a_running_stack_with_another_router_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    running = stack_info(tmp_path, PORTS).model_copy(update={"reused": True})
    monkeypatch.setattr(devstack, "up", lambda dir, **options: running)
    assert run(["dev", "up", "--dir", str(tmp_path), "--router", "envoy"]) == 1
    err = " ".join(capsys.readouterr().err.split())  # the terminal wraps long lines
    assert "runs with haproxy, not envoy" in err and "rollout dev down --dir" in err
