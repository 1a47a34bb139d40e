"""The Temporal activities, run through temporalio's ActivityEnvironment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.rollout import (
    ALL_ACTIVITIES,
    check_gates,
    check_gates_timeout,
    look,
    look_timeout,
    notify,
    read_traffic,
    shift_traffic,
)
from plans import (
    GateCheck,
    GateOutcome,
    HAProxyRouter,
    Notification,
    PrometheusSource,
    ShiftRequest,
    TrafficSplit,
    WebhookChannel,
    gate_from,
)
from plans.runtime.checks import CheckRequest

from .conftest import HAProxy, HTTPRecorder, Prometheus, free_port


def shift(api: str, percent: int, canary: str = "canary") -> ShiftRequest:
    return ShiftRequest(
        router=HAProxyRouter(runtime_api=api, backend="app"),
        stable="stable",
        canary=canary,
        split=TrafficSplit.canary_percent(percent),
    )


def test_activity_names() -> None:
    names = [fn.__temporal_activity_definition.name for fn in ALL_ACTIVITIES]  # type: ignore[attr-defined]
    assert names == [
        "shift_traffic",
        "read_traffic",
        "check_gates",
        "look",
        "notify",
        "call_hook",
        "smoke_check",
    ]


def test_shift_then_read(haproxy: HAProxy) -> None:
    env = ActivityEnvironment()
    assert env.run(shift_traffic, shift(haproxy.tcp_api, 25)) == TrafficSplit(
        stable_weight=75, canary_weight=25
    )
    assert env.run(read_traffic, shift(haproxy.unix_api, 99)) == TrafficSplit(
        stable_weight=75, canary_weight=25
    )
    assert env.run(shift_traffic, shift(haproxy.unix_api, 0)).canary_weight == 0


def test_weights_past_the_routers_limit_are_refused_before_any_command() -> None:
    # Nothing listens at this address: a command sent would fail as unreachable instead.
    request = shift(f"tcp://127.0.0.1:{free_port()}", 0).model_copy(
        update={"split": TrafficSplit(stable_weight=257, canary_weight=0)}
    )
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(shift_traffic, request)
    assert caught.value.type == "RouterRefused"
    assert caught.value.non_retryable
    assert "from 0 to 256" in caught.value.message


def test_a_channel_names_the_notifier_that_delivers_to_it() -> None:
    note = Notification(
        channel=WebhookChannel(url_env="ROLLOUT_ACTIVITY_HOOK"), text="promoted", state="promoted"
    )
    assert note == Notification(
        webhook_url_env="ROLLOUT_ACTIVITY_HOOK", text="promoted", state="promoted"
    )
    assert note.channel.kind == "webhook"


def test_refusal_is_non_retryable(haproxy: HAProxy) -> None:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(shift_traffic, shift(haproxy.unix_api, 10, canary="canary-v9"))
    assert caught.value.type == "RouterRefused"
    assert caught.value.non_retryable
    assert "'canary-v9'" in caught.value.message


def test_missing_socket_is_retryable(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(read_traffic, shift(str(tmp_path / "none.sock"), 10))
    assert caught.value.type == "RouterUnreachable"
    assert not caught.value.non_retryable


def test_check_gates(prometheus: Prometheus) -> None:
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    req = GateCheck(
        source=PrometheusSource(url=prometheus.url),
        gates=[
            gate_from(name="up", query='up{job="$service"}', min=1),
            gate_from(name="missing", query='up{job="$canary"}', min=1),
        ],
        placeholders={"service": "prometheus", "canary": "shop-canary", "stable": "shop"},
    )
    up, missing = env.run(check_gates, req)
    assert (up.gate, up.outcome, up.value) == ("up", GateOutcome.PASS, 1.0)
    assert missing.outcome is GateOutcome.INCONCLUSIVE
    assert missing.query == 'up{job="shop-canary"}'
    assert len(beats) == 2
    # The result crosses into the workflow as JSON.
    assert json.loads(up.model_dump_json())["outcome"] == "pass"


def test_one_look_reads_the_router_and_judges_the_gates(
    haproxy: HAProxy, prometheus: Prometheus
) -> None:
    env = ActivityEnvironment()
    env.run(shift_traffic, shift(haproxy.tcp_api, 30))
    check = GateCheck(
        source=PrometheusSource(url=prometheus.url),
        gates=[gate_from(name="up", query='up{job="$service"}', min=1)],
        placeholders={"service": "prometheus"},
    )
    seen = env.run(look, CheckRequest(read=shift(haproxy.unix_api, 99), check=check))
    assert seen.split == TrafficSplit(stable_weight=70, canary_weight=30)
    assert seen.unreadable == ""
    assert [(v.gate, v.outcome, v.value) for v in seen.verdicts] == [("up", GateOutcome.PASS, 1.0)]
    env.run(shift_traffic, shift(haproxy.tcp_api, 0))


def test_one_look_at_a_router_that_is_away_still_judges_the_gates(
    prometheus: Prometheus,
) -> None:
    api = f"tcp://127.0.0.1:{free_port()}"
    check = GateCheck(
        source=PrometheusSource(url=prometheus.url),
        gates=[gate_from(name="up", query='up{job="$service"}', min=1)],
        placeholders={"service": "prometheus"},
    )
    request = CheckRequest(read=shift(api, 0), check=check)
    seen = ActivityEnvironment().run(look, request)
    assert seen.split is None
    assert seen.unreadable.startswith(f"nothing listens on {api[6:]}")
    assert seen.verdicts[0].outcome is GateOutcome.PASS
    # Room for both reads, the pause between them, and the whole gate check.
    assert (
        look_timeout(request) > check_gates_timeout(check) + 2 * shift(api, 0).router.read_timeout
    )


def test_check_gates_unreachable_prometheus_is_inconclusive_not_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    req = GateCheck(
        source=PrometheusSource(url=url),
        gates=[gate_from(name="errors", query="vector(0)", max=0.05)],
        placeholders={},
    )
    (verdict,) = ActivityEnvironment().run(check_gates, req)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert verdict.reason == f"prometheus unreachable: cannot connect to {url}: Connection refused"


def test_check_gates_unset_token_names_the_variable(
    prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "NO_SUCH_PROM_TOKEN")
    monkeypatch.delenv("NO_SUCH_PROM_TOKEN", raising=False)
    req = GateCheck(
        source=PrometheusSource(url=prometheus.url, bearer_token_env="NO_SUCH_PROM_TOKEN"),
        gates=[
            gate_from(name="a", query="vector(0)", max=1),
            gate_from(name="b", query="vector(0)", max=1),
        ],
        placeholders={},
    )
    verdicts = ActivityEnvironment().run(check_gates, req)
    assert [v.outcome for v in verdicts] == [GateOutcome.INCONCLUSIVE] * 2
    assert all("NO_SUCH_PROM_TOKEN is not set" in v.reason for v in verdicts)


def test_check_gates_timeout_has_a_margin() -> None:
    req = GateCheck(
        source=PrometheusSource(url="http://127.0.0.1:9090", timeout="2s"),
        gates=[gate_from(name="a", query="up", max=1)],
        placeholders={},
    )
    assert check_gates_timeout(req).total_seconds() == 2 + 3 * 2 + 1.0 + 5


async def test_notify(webhook: HTTPRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_ACTIVITY_HOOK", f"{webhook.url}/hook/activity")
    before = len(webhook.received)
    note = Notification(webhook_url_env="ROLLOUT_ACTIVITY_HOOK", text="promoted", state="promoted")
    await ActivityEnvironment().run(notify, note)
    (got,) = webhook.received[before:]
    assert json.loads(got.body)["text"] == "promoted"


async def test_notify_unset_variable_is_non_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLOUT_UNSET_HOOK", raising=False)
    note = Notification(webhook_url_env="ROLLOUT_UNSET_HOOK", text="hi")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(notify, note)
    assert caught.value.type == "NotifierRefused"
    assert caught.value.non_retryable
    assert "ROLLOUT_UNSET_HOOK" in caught.value.message
