"""Alerts that roll back, on the real stack: `rollout dev up --alerts` with its receiver.

Alertmanager-shaped bodies are posted to the stack's receiver (`rollout alerts serve`), which
asks the real Temporal dev server; HAProxy's weights are the truth asserted on. The last test
(slow) lets the real Prometheus fire its alert and the real Alertmanager send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from devstack.processes import LOCALHOST, free_port, http_ok, spawn, stop_all, wait_ready
from plans import CommandKind, OperatorCommand, Plan, RolloutState, RolloutStatus, parse_plan
from tests.activities.conftest import reply, serve
from tests.integration.conftest import fast_plan
from tests.stack.conftest import real_stack, require_alertmanager
from tests.stack_plans import error_rate_plan
from tests.unit.test_alert_listen import make_certificate

pytestmark = pytest.mark.integration
DEPLOYED_ALERTMANAGER = Path(__file__).resolve().parents[2] / "deploy/alertmanager/alertmanager.yml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    """The dev stack with Alertmanager and the alert receiver (`rollout dev up --alerts`)."""
    require_alertmanager()
    with real_stack(tmp_path_factory.mktemp("alerts"), alerts=True) as info:
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
    assert "not about this rollout" in details["CanaryErrors:skipped"]
    assert {"A:sent", "B:skipped"} <= set(details) or {"B:sent", "A:skipped"} <= set(details)
    covered = details.get("B:skipped") or details["A:skipped"]
    assert covered.startswith("covered by the rollback just sent for alert")
    await _ended(client.get_workflow_handle(plan.workflow_id))
    status = await operations.status(client, plan.service)
    assert len([c for c in status.commands if c.by == "alertmanager"]) == 1
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0


async def test_an_alert_that_started_before_the_first_shift_changes_nothing(
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
    assert report["outcome"] == "skipped" and "not about this rollout" in report["detail"]
    assert "before the rollout first shifted traffic" in report["detail"]
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.BAKING and not status.commands
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 30


async def test_an_alert_that_started_two_stages_ago_acts(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    token: str,
    rollouts: list[str],
) -> None:
    # Alertmanager may send an alert late (group_wait, a retry, an outage of the receiver):
    # one that began in the first stage is about the rollout in the third.
    stages = [
        {"name": "first", "weight": 10, "bake": "6s", "check_every": "1s"},
        {"name": "second", "weight": 20, "bake": "5s", "check_every": "1s"},
        {"name": "third", "weight": 30, "bake": "10m", "check_every": "2s"},
    ]
    plan = fast_plan(stack, stages)
    await started(client, stack, plan, rollouts)

    async def third() -> RolloutStatus | None:
        status = await operations.status(client, plan.service)
        return status if status.stage_index == 2 and status.stage_started_at else None

    status = await until(third, f"{plan.service} in its third stage", timeout=90)
    assert status.stage_started_at is not None
    first_stage = next(
        e.at for e in status.events if e.kind == "stage" and e.text.startswith("stage 1/3")
    )
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 30
    assert stack.alerts_url is not None
    labels = {"alertname": "EarlyErrors", "severity": "critical", "service": plan.service}
    early = alert(plan.service, first_stage + timedelta(seconds=1), labels=labels)
    before = alert(plan.service, first_stage - timedelta(minutes=5))  # before any shift
    response = await post(stack.alerts_url, token, notification(before, early))
    assert response.status_code == 200, response.text
    older, acted = response.json()["alerts"]
    assert acted["alert"] == "EarlyErrors" and acted["outcome"] == "sent", acted
    assert older["outcome"] == "skipped", older
    assert "before the rollout first shifted traffic" in older["detail"]

    await _ended(client.get_workflow_handle(plan.workflow_id))
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK
    [command] = [c for c in status.commands if c.by == "alertmanager"]
    assert command.reason.startswith("alert EarlyErrors:")
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0


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
    stack: devstack.StackInfo,
    folder: Path,
    rules: str,
    *flags: str,
    ca: Path | None = None,
    **env: str,
) -> Iterator[str]:
    """Another `rollout alerts serve` with these rules and flags: its URL (token "t").

    With ``ca`` it serves HTTPS (its flags name the certificate), checked against ``ca``.
    """
    path = folder / "rules.yaml"
    path.write_text(rules)
    listen = f"{LOCALHOST}:{free_port()}"
    argv = [sys.executable, "-m", "starter", "alerts", "serve", "--listen", listen]
    argv += ["--rules", str(path), "--token-env", "OTHER_TOKEN", *flags]
    env = {"TEMPORAL_ADDRESS": stack.temporal_address, "OTHER_TOKEN": "t", **env}
    log = folder / "receiver.log"
    pid = spawn(argv, log, env=env)
    scheme = "https" if ca else "http"

    def healthy() -> bool:
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{scheme}://{listen}/-/healthy", verify=verify).is_success
        return False

    try:
        wait_ready("receiver", pid, log, healthy)
        yield f"{scheme}://{listen}/alerts"
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


async def test_a_long_summary_beside_a_good_alert_each_acts_on_its_own(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    rollouts: list[str],
    tmp_path: Path,
) -> None:
    # A 2,500-character summary with a long name and link once made a reason past the
    # command's 2,000-character cap: the whole notification failed with 500, forever.
    plan = fast_plan(stack, long_stage(15))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None
    after = status.stage_started_at + timedelta(seconds=1)
    rules = (
        "rules:\n"
        "  - match: {severity: critical}\n    action: rollback\n"
        "  - match: {team: payments}\n    action: notify\n"
    )
    long_name = "CanaryErrors" + "X" * 178  # 190 characters: kept whole
    long = alert(
        plan.service,
        after,
        labels={"alertname": long_name, "severity": "critical", "service": plan.service},
        annotations={"summary": "the canary fails: " + "details " * 320},
        generatorURL="http://prometheus.example:9090/graph?g0.expr=" + "x" * 700,
    )
    good_labels = {"alertname": "PaymentsSlow", "team": "payments", "service": plan.service}
    good = alert(plan.service, after, labels=good_labels)
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
            CHAT_HOOK=f"{webhook.url}/hook",
        ) as url,
    ):
        response = await post(url, "t", notification(long, good))
        assert response.status_code == 200, response.text
        clipped, acted = response.json()["alerts"]
        assert acted["alert"] == "PaymentsSlow" and acted["outcome"] == "notified", acted
        assert "posted to the webhook from $CHAT_HOOK" in acted["detail"]
        assert clipped["alert"] == long_name and clipped["outcome"] == "sent", clipped
        [got] = webhook.received
    assert json.loads(got.body)["text"].startswith("alert PaymentsSlow: canary answers 31%")

    await _ended(client.get_workflow_handle(plan.workflow_id))
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK
    [command] = [c for c in status.commands if c.by == "alertmanager"]
    assert len(command.reason) <= 2000
    assert command.reason.startswith(f"alert {long_name}: the canary fails: details")
    assert "characters)" in command.reason  # clipped, saying how long it was
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0


@contextlib.contextmanager
def alertmanager_to(
    receiver_url: str, folder: Path, token_file: Path, ca_file: Path
) -> Iterator[str]:
    """A real Alertmanager whose only receiver is deploy/'s `rollouts`, aimed at receiver_url.

    Its http_config (bearer token from a file, TLS checked against a CA file and server
    name) is the production file's; only the URL and the files' paths are this test's.
    """
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary is not None
    production = yaml.safe_load(DEPLOYED_ALERTMANAGER.read_text())
    [rollouts] = [r for r in production["receivers"] if r["name"] == "rollouts"]
    [webhook] = rollouts["webhook_configs"]
    webhook["url"] = receiver_url
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    webhook["http_config"]["tls_config"]["ca_file"] = str(ca_file)
    route = {"receiver": "rollouts", "group_wait": "0s", "group_interval": "1s"}
    config = folder / "alertmanager.yml"
    config.write_text(yaml.safe_dump({"route": route, "receivers": [rollouts]}))
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--storage.path={folder / 'am-data'}"]
    argv += [f"--web.listen-address={LOCALHOST}:{port}", "--cluster.listen-address="]
    log = folder / "alertmanager.log"
    pid = spawn(argv, log)
    try:
        url = f"http://{LOCALHOST}:{port}"
        wait_ready("alertmanager", pid, log, lambda: http_ok(f"{url}/-/ready"))
        yield url
    finally:
        stop_all({"alertmanager": pid})


async def test_alertmanager_sends_over_tls_with_its_token_file_and_the_rollout_rolls_back(
    stack: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    rollouts: list[str],
    tmp_path: Path,
) -> None:
    # The production wiring (deploy/): the receiver serves HTTPS; Alertmanager reads the
    # token from credentials_file and checks the certificate against ca_file as "alerts".
    cert, key = make_certificate(tmp_path, "DNS:alerts,IP:127.0.0.1")
    token_file = tmp_path / "rollout-alert-token"
    token_file.write_text("t\n")
    plan = fast_plan(stack, long_stage(25))
    await started(client, stack, plan, rollouts)
    status = await baking(client, plan.service)
    assert status.stage_started_at is not None
    rules = "rules:\n  - match: {severity: critical}\n    action: rollback\n"
    flags = ("--tls-cert", str(cert), "--tls-key", str(key))
    with (
        receiver(stack, tmp_path, rules, *flags, ca=cert) as url,
        alertmanager_to(url, tmp_path, token_file, cert) as alertmanager,
    ):
        firing = {
            "labels": {"alertname": "CanaryErrorsTls", "severity": "critical",
                       "service": plan.service},
            "annotations": {"summary": "sent by Alertmanager over TLS"},
            "startsAt": (status.stage_started_at + timedelta(seconds=1)).isoformat(),
        }  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as http:
            posted = await http.post(f"{alertmanager}/api/v2/alerts", json=[firing])
        assert posted.status_code == 200, posted.text
        handle = client.get_workflow_handle(plan.workflow_id)
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=60)
        log = (tmp_path / "receiver.log").read_text()
    assert "listening on https://" in log
    assert "sent rollback" in log and "alert=CanaryErrorsTls" in log
    status = await operations.status(client, plan.service)
    [command] = [c for c in status.commands if c.by == "alertmanager"]
    assert command.reason == "alert CanaryErrorsTls: sent by Alertmanager over TLS"
    assert (await asyncio.to_thread(router.get_weight, "canary")) == 0
