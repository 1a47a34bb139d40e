"""Fuzzed Alertmanager bodies against the real receiver: 400 with a reason, or a report per alert.

The receiver runs as `rollout alerts serve` beside a real Temporal dev server with no
rollouts, so every alert that passes the screen is looked up in Temporal and found to have
no rollout (200). Never a crash, never a 5xx.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.processes import LOCALHOST, free_port, http_ok, spawn, stop_all, wait_ready
from receiver.decide import Outcome
from receiver.payload import MalformedNotification, parse_notification
from tests.stack.conftest import missing_binaries

TOKEN = "fuzz-token"
TEMPORAL = Path(sys.executable).parent / "temporal"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The receiver's webhook URL, with a real Temporal dev server behind it."""
    if "temporal" in missing_binaries():
        pytest.skip("the Temporal CLI is not installed: run scripts/bootstrap.sh")
    logs = tmp_path_factory.mktemp("alert-fuzz")
    ports = {name: free_port() for name in ("grpc", "ui", "http", "metrics", "receiver")}
    pids: dict[str, int] = {}
    try:
        argv = [str(TEMPORAL), "server", "start-dev", "--ip", LOCALHOST, "--headless"]
        argv += ["--port", str(ports["grpc"]), "--ui-port", str(ports["ui"])]
        argv += ["--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"])]
        pids["temporal"] = spawn([*argv, "--log-level", "error"], logs / "temporal.log")
        namespace = f"http://{LOCALHOST}:{ports['http']}/api/v1/namespaces/default"
        wait_ready(
            "temporal",
            pids["temporal"],
            logs / "temporal.log",
            lambda: http_ok(namespace),
            timeout=60,
        )
        env = {
            "TEMPORAL_ADDRESS": f"{LOCALHOST}:{ports['grpc']}",
            "ROLLOUT_ALERT_TOKEN": TOKEN,
            "ROLLOUT_DIR": str(logs / "no-stack"),
        }
        listen = f"{LOCALHOST}:{ports['receiver']}"
        serve = [sys.executable, "-m", "starter", "alerts", "serve", "--listen", listen]
        pids["receiver"] = spawn(serve, logs / "receiver.log", env={**os.environ, **env})
        health = f"http://{listen}/-/healthy"
        wait_ready("receiver", pids["receiver"], logs / "receiver.log", lambda: http_ok(health))
        yield f"http://{listen}/alerts"
    finally:
        stop_all(pids)


# -- bodies: anything, JSON of any shape, and notifications with fields gone wrong ------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
label_values = st.sampled_from(["critical", "warning", "checkout", "demo", ""]) | st.text(
    max_size=30
)
labels = st.dictionaries(
    st.sampled_from(["alertname", "severity", "service", "team"]) | st.text(max_size=10),
    label_values,
    max_size=5,
)
times = (
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())
    | st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-22T10:00:00Z", "2026-11-22", "soon"])
    | json_values
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything at all."""
    return st.one_of(valid, valid, valid, json_values)


alerts = st.fixed_dictionaries(
    {
        "status": maybe(st.sampled_from(["firing", "resolved"])),
        "labels": maybe(labels),
        "annotations": maybe(st.dictionaries(st.text(max_size=10), st.text(max_size=50))),
        "startsAt": times,
        "endsAt": times,
        "generatorURL": maybe(st.text(max_size=40)),
        "fingerprint": maybe(st.text(max_size=16)),
    }
)
notifications = st.fixed_dictionaries(
    {
        "version": maybe(st.just("4")),
        "groupKey": maybe(st.text(max_size=20)),
        "truncatedAlerts": maybe(st.integers(min_value=0, max_value=10)),
        "status": maybe(st.sampled_from(["firing", "resolved"])),
        "receiver": maybe(st.text(max_size=10)),
        "groupLabels": maybe(labels),
        "commonLabels": maybe(labels),
        "commonAnnotations": maybe(labels),
        "externalURL": maybe(st.text(max_size=20)),
        "alerts": maybe(st.lists(alerts, max_size=4)),
    }
).flatmap(
    lambda data: st.sets(st.sampled_from(sorted(data))).map(lambda gone: _without(data, gone))
)


def _without(data: dict[str, Any], gone: set[str]) -> dict[str, Any]:
    # Usually whole; sometimes a few fields are left out.
    return {k: v for k, v in data.items() if k not in gone or len(gone) > 3}


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    notifications.map(lambda v: json.dumps(v).encode()),
    notifications.map(lambda v: json.dumps(v).encode()),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies)
def test_any_body_gets_400_with_a_reason_or_a_report_per_alert(receiver: str, raw: bytes) -> None:
    try:
        group = parse_notification(raw)
    except MalformedNotification:
        group = None
    response = httpx.post(
        receiver, content=raw, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    answer = response.json()
    if group is None:
        assert response.status_code == 400, answer
        assert isinstance(answer["error"], str) and answer["error"]
        return
    assert response.status_code == 200, answer
    assert len(answer["alerts"]) == len(group.alerts)
    outcomes = {Outcome.SKIPPED.value, Outcome.DUPLICATE.value}
    for report in answer["alerts"]:
        # No rollout runs here: each alert is skipped, with the reason.
        assert report["outcome"] in outcomes and report["detail"], report


@settings(max_examples=300, deadline=None)
@given(raw=bodies)
def test_the_parser_only_ever_refuses_with_its_own_error(raw: bytes) -> None:
    try:
        group = parse_notification(raw)
    except MalformedNotification as error:
        assert str(error)
        return
    assert group.version == "4"
    for alert in group.alerts:
        assert alert.starts_at.tzinfo is not None and alert.key
