"""The real dev stack: HAProxy routes by weight, Prometheus scrapes, faults bite, down cleans up."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

import devstack
from devstack.info import DEFAULT_PORTS, dump
from devstack.processes import StackError, pid_alive, port_is_free

pytestmark = pytest.mark.integration

STACK_KEYS = {
    "temporal_address",
    "namespace",
    "task_queue",
    "ui_url",
    "prometheus_url",
    "haproxy_url",
    "haproxy_socket",
    "haproxy_admin_tcp",
    "haproxy_backend",
    "stable_url",
    "canary_url",
    "metrics",
    "pids",
    "dir",
}


def haproxy(address: str, command: str) -> str:
    """Send one command to HAProxy's runtime API (tcp://host:port or a socket path)."""
    if address.startswith("tcp://"):
        host, _, port = address[6:].rpartition(":")
        conn = socket.create_connection((host, int(port)), timeout=5)
    else:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5)
        conn.connect(address)
    with conn:
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode().strip()


def set_weights(info: devstack.StackInfo, stable: int, canary: int) -> None:
    for server, weight in (("stable", stable), ("canary", canary)):
        answer = haproxy(info.haproxy_admin_tcp, f"set weight app/{server} {weight}")
        assert answer == "", answer


def versions(url: str, count: int = 30) -> Counter[str]:
    with httpx.Client(timeout=5) as client:
        return Counter(client.get(url).headers["X-Version"] for _ in range(count))


def query(info: devstack.StackInfo, promql: str) -> list[dict[str, object]]:
    response = httpx.get(f"{info.prometheus_url}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def labels(series: list[dict[str, object]], name: str) -> set[str]:
    return {str(s["metric"][name]) for s in series}  # type: ignore[index]


def test_stack_json_has_every_key(stack: devstack.StackInfo, stack_dir: Path) -> None:
    data = dump(devstack.load(stack_dir))
    assert set(data) >= STACK_KEYS
    assert data["state"] == "up"
    assert data["haproxy_backend"] == "app"
    assert data["haproxy_admin_tcp"].startswith("tcp://127.0.0.1:")
    assert set(data["pids"]) == {"temporal", "stable", "canary", "haproxy", "prometheus", "loadgen"}
    assert {"haproxy", "stable", "canary"} <= set(data["metrics"])
    assert Path(data["haproxy_socket"]).exists()


def test_a_taken_default_port_is_replaced_by_a_free_one(stack: devstack.StackInfo) -> None:
    assert stack.ports["app"] != DEFAULT_PORTS["app"]
    assert stack.haproxy_url == f"http://127.0.0.1:{stack.ports['app']}/"
    assert len(set(stack.ports.values())) == len(stack.ports)


def test_weights_100_0_send_everything_to_stable(stack: devstack.StackInfo) -> None:
    set_weights(stack, 100, 0)
    assert versions(stack.haproxy_url) == Counter({"stable": 30})


def test_runtime_api_splits_traffic(stack: devstack.StackInfo) -> None:
    set_weights(stack, 50, 50)
    try:
        assert haproxy(stack.haproxy_socket, "get weight app/canary") == "50 (initial 0)"
        seen = versions(stack.haproxy_url)
        assert seen["stable"] > 5 and seen["canary"] > 5, seen
    finally:
        set_weights(stack, 100, 0)


def test_prometheus_scrapes_demo_and_haproxy(stack: devstack.StackInfo) -> None:
    set_weights(stack, 50, 50)
    try:
        both = {"stable", "canary"}
        served = 'haproxy_server_http_responses_total{proxy="app",code="2xx"} > 0'
        deadline = time.monotonic() + 15
        while True:
            demo = labels(query(stack, 'demo_requests_total{code="200"} > 0'), "version")
            servers = labels(query(stack, served), "server")
            if (demo == both and servers == both) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert demo == both
        assert servers == both
    finally:
        set_weights(stack, 100, 0)


def test_fault_makes_the_canary_fail_at_about_the_asked_rate(
    stack: devstack.StackInfo, stack_dir: Path
) -> None:
    assert devstack.fault(stack_dir, 0.5, 0) == {"error_rate": 0.5, "latency_ms": 0}
    try:
        assert httpx.get(stack.canary_url + "fault").json()["error_rate"] == 0.5
        with httpx.Client(timeout=5) as client:
            codes = Counter(client.get(stack.canary_url).status_code for _ in range(200))
            stable = Counter(client.get(stack.stable_url).status_code for _ in range(20))
        assert set(codes) <= {200, 500}
        assert 70 <= codes[500] <= 130, codes
        assert stable == Counter({200: 20})
    finally:
        devstack.fault(stack_dir, 0.0, 0)


def test_fault_refuses_an_impossible_rate(stack: devstack.StackInfo, stack_dir: Path) -> None:
    with pytest.raises(StackError, match="error_rate"):
        devstack.fault(stack_dir, 1.5, 0)


def test_up_again_returns_the_running_stack(stack: devstack.StackInfo, stack_dir: Path) -> None:
    again = devstack.up(stack_dir, with_worker=False)
    assert again.reused
    assert again.pids == devstack.load(stack_dir).pids


async def test_history_and_search_attributes_survive_a_restart(
    stack: devstack.StackInfo, stack_dir: Path
) -> None:
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_keyword("RolloutService"), "demo"),
            SearchAttributePair(SearchAttributeKey.for_keyword("RolloutVersion"), "canary"),
            SearchAttributePair(SearchAttributeKey.for_keyword("RolloutStage"), "canary-10"),
            SearchAttributePair(SearchAttributeKey.for_int("RolloutWeight"), 10),
            SearchAttributePair(SearchAttributeKey.for_keyword("RolloutState"), "baking"),
        ]
    )
    client = await Client.connect(stack.temporal_address, namespace=stack.namespace)
    # No worker polls this queue: the run just waits, which is all a restart needs.
    await client.start_workflow(
        "RolloutWorkflow",
        id="rollout-restart-check",
        task_queue="no-worker-here",
        search_attributes=attributes,
    )
    old_pid = devstack.load(stack_dir).pids["temporal"]
    await asyncio.to_thread(devstack.down, stack_dir)
    assert not pid_alive(old_pid)
    info = await asyncio.to_thread(devstack.up, stack_dir, with_worker=False)
    assert info.temporal_address == stack.temporal_address
    client = await Client.connect(info.temporal_address, namespace=info.namespace)
    described = await client.get_workflow_handle("rollout-restart-check").describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.typed_search_attributes.get(SearchAttributeKey.for_int("RolloutWeight")) == 10


def test_down_stops_every_process_and_frees_the_ports(
    stack: devstack.StackInfo, stack_dir: Path
) -> None:
    info = devstack.load(stack_dir)
    stopped = devstack.down(stack_dir)
    assert set(stopped) == set(info.pids)
    assert not any(pid_alive(pid) for pid in info.pids.values())
    assert port_is_free(info.ports["app"]) and port_is_free(info.ports["temporal"])
    assert devstack.load(stack_dir).state == "down"
    assert devstack.down(stack_dir) == []


def test_a_process_that_dies_is_named_with_its_log_and_nothing_is_left(
    tmp_path_factory: pytest.TempPathFactory, stack_binaries: None
) -> None:
    folder = tmp_path_factory.mktemp("broken")
    with pytest.raises(
        StackError, match=r"temporal exited before it was ready; see .*temporal\.log"
    ):
        devstack.up(folder, with_worker=False, temporal_bin="/bin/false")
    info = devstack.load(folder)
    assert info.state == "down"
    assert "haproxy" in info.pids
    assert not any(pid_alive(pid) for pid in info.pids.values())


def test_a_port_lost_between_choosing_and_binding_is_chosen_again(
    tmp_path_factory: pytest.TempPathFactory,
    stack_binaries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path_factory.mktemp("race")
    chosen: list[dict[str, int]] = []
    choose = devstack.choose_ports
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        def first_choice_loses_the_race(preferred: dict[str, int]) -> dict[str, int]:
            ports = choose(preferred)
            if not chosen:
                ports["temporal"] = taken  # another program bound it after our look
            chosen.append(ports)
            return ports

        # where `up` looks it up: the stack module's own name for it
        monkeypatch.setattr(devstack.stack, "choose_ports", first_choice_loses_the_race)
        with devstack.running(folder, with_worker=False) as info:
            assert info.ports["temporal"] != taken
            assert pid_alive(info.pids["temporal"])
    assert len(chosen) == 2
