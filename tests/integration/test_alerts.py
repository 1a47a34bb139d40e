"""Alerts that roll back, on the real stack: `rollout dev up --alerts` with its receiver.

Alertmanager-shaped bodies are posted to the stack's receiver (`rollout alerts serve`), which
asks the real Temporal dev server; HAProxy's weights are the truth asserted on. The last test
(slow) lets the real Prometheus fire its alert and the real Alertmanager send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from activities.routers.haproxy import HAProxyRuntime
from plans import CommandKind, OperatorCommand, Plan, RolloutState, RolloutStatus, parse_plan
from starter import devstack, operations
from starter.processes import LOCALHOST, free_port, http_ok, spawn, stop_all, wait_ready
from tests.activities.conftest import reply, serve
from tests.integration.conftest import fast_plan
from tests.stack.conftest import ANY_PORTS, missing_binaries
from tests.stack_plans import error_rate_plan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The dev stack with Alertmanager and the alert receiver (`rollout dev up --alerts`)."""
    missing = missing_binaries()
    if not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")):
        missing.append("prometheus-alertmanager")
    if missing:
        message = f"the real stack needs {', '.join(missing)}: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("alerts")
    with devstack.running(directory, with_worker=True, alerts=True, ports=ANY_PORTS) as info:
        yield info


@pytest.fixture(scope="module")
def token(stack: devstack.StackInfo) -> str:
    return stack.alert_token_file.read_text().strip()


@pytest.fixture
async def rollouts(client: Client) -> AsyncIterator[list[str]]:
    """Services whose rollouts a test started: rolled back afterwards if still running, since
    one rollout at a time may move the stack's backend."""
    services: list[str] = []
    yield services
    for service in services:
        status = await operations.status(client, service)
        if not status.state.final:
            stop = OperatorCommand(kind=CommandKind.ROLLBACK, by="tests", reason="test over")
            await operations.send_command(client, service, stop)
        handle = client.get_workflow_handle(operations.workflow_id(service))
        await _ended(handle)


async def _ended(handle: WorkflowHandle[Any, Any]) -> None:
    # A rolled-back run ends as failed.
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)


def alert(service: str, starts_at: datetime, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "CanaryErrors", "severity": "critical", "service": service},
        "annotations": {"summary": "canary answers 31% with a 5xx"},
        "startsAt": starts_at.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=canary_errors",
        "fingerprint": uuid.uuid4().hex[:16],
    }
    data.update(changes)
    return data


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="CanaryErrors"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollouts",
        "groupLabels": {"alertname": "CanaryErrors"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


async def post(url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:g}s")


async def baking(client: Client, service: str) -> RolloutStatus:
    async def check() -> RolloutStatus | None:
        status = await operations.status(client, service)
        ok = status.state == RolloutState.BAKING and status.stage_started_at is not None
        return status if ok else None

    found: RolloutStatus = await until(check, f"{service} baking with its stage's start")
    return found


async def started(client: Client, stack: devstack.StackInfo, plan: Plan, into: list[str]) -> None:
    await operations.start_rollout(client, plan, stack.task_queue)
    into.append(plan.service)


def long_stage(weight: int = 50) -> list[dict[str, Any]]:
    return [{"name": "half", "weight": weight, "bake": "10m", "check_every": "2s"}]


async def test_a_critical_alert_rolls_back_once_however_often_it_is_sent(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    token: str,
    rollouts: list[str],
) -> None:
    plan = fast_plan(stack, long_stage())
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 50
    assert status.stage_started_at is not None
    firing = alert(plan.service, status.stage_started_at + timedelta(seconds=1))
    assert stack.alerts_url is not None

    response = await post(stack.alerts_url, token, notification(firing))
    assert response.status_code == 200, response.text
    [report] = response.json()["alerts"]
    assert report["outcome"] == "sent" and report["action"] == "rollback", report

    handle = client.get_workflow_handle(plan.workflow_id)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK
    [command] = [c for c in status.commands if c.by == "alertmanager"]
    assert command.kind == "rollback" and command.accepted
    assert command.reason == (
        "alert CanaryErrors: canary answers 31% with a 5xx"
        " (http://prometheus.example:9090/graph?g0.expr=canary_errors)"
    )

    # Alertmanager repeats a notification (repeat_interval, a retry, a second instance).
    again = await post(stack.alerts_url, token, notification(firing))
    assert again.status_code == 200
    assert again.json()["alerts"][0]["outcome"] == "duplicate"
    status = await operations.status(client, plan.service)
    assert len([c for c in status.commands if c.by == "alertmanager"]) == 1


async def test_two_copies_of_a_notification_at_once_send_one_command(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    token: str,
    rollouts: list[str],
) -> None:
    # Two Alertmanagers of a cluster post the same group at the same moment.
    plan = fast_plan(stack, long_stage(40))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None and stack.alerts_url is not None
    body = notification(alert(plan.service, status.stage_started_at + timedelta(seconds=1)))
    first, second = await asyncio.gather(
        post(stack.alerts_url, token, body), post(stack.alerts_url, token, body)
    )
    outcomes = sorted(r.json()["alerts"][0]["outcome"] for r in (first, second))
    assert outcomes == ["duplicate", "sent"]
    await _ended(client.get_workflow_handle(plan.workflow_id))
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK
    assert len([c for c in status.commands if c.by == "alertmanager"]) == 1
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0


async def test_several_alerts_for_one_rollout_make_one_command(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    token: str,
    rollouts: list[str],
) -> None:
    plan = fast_plan(stack, long_stage(35))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None and stack.alerts_url is not None
    after = status.stage_started_at + timedelta(seconds=1)
    alerts = [
        alert(plan.service, status.stage_started_at - timedelta(minutes=1)),  # older
        alert(plan.service, after, labels={"alertname": "A", "severity": "critical",
                                           "service": plan.service}),
        alert(plan.service, after, labels={"alertname": "B", "severity": "critical",
                                           "service": plan.service}),
    ]  # fmt: skip
    response = await post(stack.alerts_url, token, notification(*alerts))
    assert response.status_code == 200
    details = {a["alert"] + ":" + a["outcome"]: a["detail"] for a in response.json()["alerts"]}
    assert "not about this stage" in details["CanaryErrors:skipped"]
    assert {"A:sent", "B:skipped"} <= set(details) or {"B:sent", "A:skipped"} <= set(details)
    covered = details.get("B:skipped") or details["A:skipped"]
    assert covered.startswith("covered by the rollback just sent for alert")
    await _ended(client.get_workflow_handle(plan.workflow_id))
    status = await operations.status(client, plan.service)
    assert len([c for c in status.commands if c.by == "alertmanager"]) == 1
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0


async def test_an_alert_that_started_before_the_stage_changes_nothing(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    token: str,
    rollouts: list[str],
) -> None:
    plan = fast_plan(stack, long_stage(30))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None
    old = alert(plan.service, status.stage_started_at - timedelta(minutes=5))
    assert stack.alerts_url is not None
    response = await post(stack.alerts_url, token, notification(old))
    assert response.status_code == 200
    [report] = response.json()["alerts"]
    assert report["outcome"] == "skipped" and "not about this stage" in report["detail"]
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.BAKING and not status.commands
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 30


async def test_alerts_for_no_running_rollout_are_answered_200(
    stack: devstack.StackInfo, token: str
) -> None:
    assert stack.alerts_url is not None
    nobody = alert(f"nobody-{uuid.uuid4().hex[:6]}", datetime.now(UTC))
    response = await post(stack.alerts_url, token, notification(nobody))
    assert response.status_code == 200
    [report] = response.json()["alerts"]
    assert report["outcome"] == "skipped" and "no rollout of" in report["detail"]


async def test_the_stacks_receiver_wants_its_token_and_a_notification(
    stack: devstack.StackInfo, token: str
) -> None:
    assert stack.alerts_url is not None
    body = notification(alert("anything", datetime.now(UTC)))
    assert (await post(stack.alerts_url, "not-the-token", body)).status_code == 401
    async with httpx.AsyncClient(timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"}
        response = await http.post(stack.alerts_url, content=b"{}", headers=headers)
    assert response.status_code == 400 and "version" in response.json()["error"]


@contextlib.contextmanager
def receiver(
    stack: devstack.StackInfo, folder: Path, rules: str, *flags: str, **env: str
) -> Iterator[str]:
    """Another `rollout alerts serve` with these rules and flags: its URL (token "t")."""
    path = folder / "rules.yaml"
    path.write_text(rules)
    listen = f"{LOCALHOST}:{free_port()}"
    argv = [sys.executable, "-m", "starter", "alerts", "serve", "--listen", listen]
    argv += ["--rules", str(path), "--token-env", "OTHER_TOKEN", *flags]
    env = {"TEMPORAL_ADDRESS": stack.temporal_address, "OTHER_TOKEN": "t", **env}
    log = folder / "receiver.log"
    pid = spawn(argv, log, env=env)
    try:
        wait_ready("receiver", pid, log, lambda: http_ok(f"http://{listen}/-/healthy"))
        yield f"http://{listen}/alerts"
    finally:
        stop_all({"receiver": pid})


@pytest.fixture
def pausing_receiver(stack: devstack.StackInfo, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A receiver whose rules pause on warnings, reading the service from label `app`."""
    rules = (
        "rules:\n"
        "  - match: {severity: critical}\n    action: rollback\n"
        "  - match: {severity: warning}\n    action: pause\n"
    )
    with receiver(stack, tmp_path, rules, "--service-label", "app") as url:
        yield url, "t"


async def test_a_rules_file_can_make_a_warning_pause_the_rollout(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    rollouts: list[str],
    pausing_receiver: tuple[str, str],
) -> None:
    url, token = pausing_receiver
    plan = fast_plan(stack, long_stage(20))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None
    warning = alert(
        "ignored",
        status.stage_started_at + timedelta(seconds=1),
        labels={"alertname": "CanaryLatency", "severity": "warning", "app": plan.service},
    )
    response = await post(url, token, notification(warning))
    assert response.status_code == 200
    assert response.json()["alerts"][0]["outcome"] == "sent"
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.PAUSED and status.paused
    [command] = status.commands
    assert (command.kind, command.by) == ("pause", "alertmanager")
    # Paused, not rolled back: the canary keeps its share.
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 20


@pytest.mark.slow
async def test_prometheus_fires_alertmanager_sends_and_the_rollout_rolls_back(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, rollouts: list[str]
) -> None:
    # The stack's alert rule names the demo service; the plan's own gate only records (dry
    # run), so that the alert, not the gate, is what rolls back.
    data = error_rate_plan(stack, "demo", long_stage(), window="10s", dry_run=True)
    plan = parse_plan(data)
    await started(client, stack, plan, rollouts)
    await baking(client, plan.service)
    await asyncio.to_thread(devstack.fault, Path(stack.dir), 0.4, 0)

    handle = client.get_workflow_handle(plan.workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=120)
    assert "rollback requested by alertmanager: alert CanaryErrorRateHigh" in str(
        failure.value.cause
    )
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    status = await operations.status(client, plan.service)
    [command] = [c for c in status.commands if c.by == "alertmanager"]
    assert "of its requests with a 5xx" in command.reason
    assert command.reason.endswith("&g0.tab=1)")  # Prometheus's link to the alert's graph
    assert stack.prometheus_url in command.reason


async def test_a_notify_rule_posts_to_the_webhook_and_leaves_the_rollout_alone(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    rollouts: list[str],
    tmp_path: Path,
) -> None:
    plan = fast_plan(stack, long_stage(10))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None
    rules = "rules:\n  - match: {team: payments}\n    action: notify\n"
    hook = contextlib.contextmanager(serve)(
        lambda handler, got: reply(handler, 200, b"ok", "text/plain")
    )
    with (
        hook as webhook,
        receiver(
            stack,
            tmp_path,
            rules,
            "--notify-webhook-env",
            "CHAT_HOOK",
            CHAT_HOOK=f"{webhook.url}/hook/secret",
        ) as url,
    ):
        labels = {"alertname": "PaymentsSlow", "team": "payments", "service": plan.service}
        firing = alert(plan.service, status.stage_started_at + timedelta(seconds=1), labels=labels)
        response = await post(url, "t", notification(firing))
        assert response.status_code == 200
        [report] = response.json()["alerts"]
        assert report["outcome"] == "notified", report
        assert "posted to the webhook from $CHAT_HOOK" in report["detail"]
        assert "secret" not in response.text
        [got] = webhook.received
    message = json.loads(got.body)
    assert message["service"] == plan.service and message["state"] == "baking"
    assert message["text"].startswith("alert PaymentsSlow: canary answers 31% with a 5xx")
    assert f"fired for {plan.service} during stage 'half' (canary 10%)" in message["text"]
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.BAKING and not status.commands
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 10
