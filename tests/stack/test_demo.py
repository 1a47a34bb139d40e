"""The demo service, the load generator, port choice and config rendering, without the stack."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import devstack
from demo import loadgen
from demo.configs import HAProxyLayout, haproxy_config
from demo.example_plans import demo_plan
from demo.monitoring import prometheus_config
from demo.service import DemoServer, Fault
from devstack.configs import render_haproxy, render_prometheus
from devstack.info import DEFAULT_PORTS, stack_info
from devstack.processes import choose_ports, port_is_free
from plans import parse_plan


@pytest.fixture
def canary() -> Iterator[str]:
    """A canary demo service on a free port, in a thread; yields its base URL."""
    server = DemoServer(("127.0.0.1", 0), "canary", Fault())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_service_answers_with_its_version(canary: str) -> None:
    response = httpx.get(canary)
    assert response.status_code == 200
    assert response.text == "canary\n"
    assert response.headers["X-Version"] == "canary"


def test_fault_turns_answers_into_500s_but_leaves_healthz(canary: str) -> None:
    assert httpx.post(canary + "fault", json={"error_rate": 1}).json() == {
        "error_rate": 1.0,
        "latency_ms": 0,
    }
    assert httpx.get(canary).status_code == 500
    assert httpx.get(canary + "healthz").status_code == 200
    # Fields left out keep their value.
    httpx.post(canary + "fault", json={"latency_ms": 20})
    assert httpx.get(canary + "fault").json() == {"error_rate": 1.0, "latency_ms": 20}


def test_fault_rejects_bad_input_with_the_reason(canary: str) -> None:
    response = httpx.post(canary + "fault", json={"error_rate": 2})
    assert response.status_code == 400
    assert "error_rate" in response.json()["error"]
    assert httpx.post(canary + "fault", json={"errors": 1}).status_code == 400
    assert httpx.post(canary + "fault", content=b"not json").status_code == 400


@pytest.mark.parametrize(
    "data",
    [{"error_rate": -0.1}, {"error_rate": True}, {"latency_ms": "slow"}, {"latency_ms": 10**6}, []],
)
def test_fault_validation(data: object) -> None:
    with pytest.raises(ValueError):
        Fault().changed(data)


def test_metrics_count_requests_by_code_and_time_them(canary: str) -> None:
    httpx.get(canary)
    httpx.post(canary + "fault", json={"error_rate": 1})
    httpx.get(canary)
    text = httpx.get(canary + "metrics").text
    assert 'demo_requests_total{code="200",version="canary"} 1.0' in text
    assert 'demo_requests_total{code="500",version="canary"} 1.0' in text
    assert 'demo_request_duration_seconds_count{version="canary"} 2.0' in text
    assert 'demo_fault_error_rate{version="canary"} 1.0' in text


async def test_loadgen_keeps_the_asked_pace(canary: str) -> None:
    tally = await loadgen.run(canary, rps=40, duration=1.0)
    assert 30 <= tally.total <= 45, tally.line()
    assert set(tally.answers) == {("canary", 200)}
    assert not tally.failures


async def test_loadgen_counts_failures_without_stopping() -> None:
    tally = await loadgen.run(f"http://127.0.0.1:{_closed_port()}/", rps=20, duration=0.5)
    assert tally.total == 0
    assert sum(tally.failures.values()) >= 5


def test_loadgen_command_stops_after_its_duration(canary: str) -> None:
    argv = [sys.executable, "-m", "demo.loadgen", "--url", canary, "--rps", "20"]
    done = subprocess.run(
        [*argv, "--duration", "0.5"], capture_output=True, text=True, timeout=20, check=True
    )
    assert "final answered=" in done.stdout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_choose_ports_replaces_taken_and_repeated_ones() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert not port_is_free(busy)
        free = _closed_port()
        ports = choose_ports({"a": busy, "b": free, "c": free, "d": 0})
    assert ports["a"] != busy
    assert ports["b"] == free
    assert len(set(ports.values())) == 4


def _dev_info(tmp_path: Path) -> devstack.StackInfo:
    return stack_info(tmp_path, dict(DEFAULT_PORTS))


def test_dev_haproxy_config_starts_at_100_0(tmp_path: Path) -> None:
    text = render_haproxy(_dev_info(tmp_path))
    assert "server stable 127.0.0.1:8001 weight 100" in text
    assert "server canary 127.0.0.1:8002 weight 0" in text
    assert f"stats socket {tmp_path}/haproxy.sock mode 600 level admin" in text
    assert "stats socket ipv4@127.0.0.1:9999 level admin" in text
    assert "prometheus-exporter if { path /metrics }" in text


def test_dev_prometheus_config_scrapes_the_worker_when_there_is_one(tmp_path: Path) -> None:
    info = _dev_info(tmp_path)
    assert "127.0.0.1:9464" in render_prometheus(info)
    info.worker_metrics = None
    text = render_prometheus(info)
    assert "worker" not in text
    assert "scrape_interval: 1s" in text


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_dev_config(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    info = _dev_info(tmp_path)
    path.write_text(render_haproxy(info))
    Path(info.haproxy_match_map).touch()  # as the stack writes it: empty, read at start
    checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_dev_config(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus(_dev_info(tmp_path)))
    checked = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_demo_plan_is_a_valid_plan() -> None:
    plan = parse_plan(demo_plan("tcp://127.0.0.1:9999", "http://127.0.0.1:9090"))
    assert plan.router.backend == "app"
    assert [stage.weight for stage in plan.stages] == [10, 50, 100]
    gate = plan.gates[0]
    assert 'server="canary"' in plan.metrics.render(
        gate.query, plan.placeholders(), window=gate.window
    )


def test_config_functions_are_pure() -> None:
    layout = HAProxyLayout("a:1", "b:2", "c:3", "d:4", "e:5")
    assert haproxy_config(layout) == haproxy_config(layout)
    assert "stats socket /" not in haproxy_config(layout)
    assert prometheus_config({"x": ["h:1"]}) == prometheus_config({"x": ["h:1"]})


def test_without_a_stack_load_says_how_to_start_one_and_down_does_nothing(tmp_path: Path) -> None:
    with pytest.raises(devstack.StackError, match="rollout dev up"):
        devstack.load(tmp_path)
    assert devstack.down(tmp_path) == []
    assert devstack.status(tmp_path) == {}


def test_a_damaged_stack_file_is_reported(tmp_path: Path) -> None:
    devstack.stack_file(tmp_path).write_text("{not json")
    with pytest.raises(devstack.StackError, match="not a stack description"):
        devstack.load(tmp_path)
