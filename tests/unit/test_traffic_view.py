"""`rollout status` says what users get: the router now beside what the run last asked for."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from client.records import TemporalRecords, asked_of
from plans import RolloutState, RolloutStatus, ShiftRequest, TrafficSplit, parse_plan
from plans.runtime.inputs import RolloutInput
from plans.runtime.progress import BakeClock, RolloutProgress, TargetHold
from plans.runtime.traffic import ObservedStatus, Restore, TrafficReading
from starter import render, traffic
from workflows.rollout.status import status_of

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LEASE = "target-haproxy-0123456789abcdef"
WHERE = "haproxy shop via tcp://127.0.0.1:9999"
RESTORED = (
    "rollout-shop was terminated without a rollback; its lease restored: stable put back on"
    " haproxy tcp://127.0.0.1:9999 backend shop and read back: canary 0%"
)


def make_plan(runtime_api: str = "tcp://127.0.0.1:9999") -> Any:
    return parse_plan(
        {
            "service": "shop",
            "version": "v2",
            "stable": "shop-v1",
            "canary": "shop-v2",
            "router": {
                "kind": "haproxy",
                "runtime_api": runtime_api,
                "backend": "shop",
                "timeout": "1s",
            },
            "metrics": {"kind": "prometheus", "url": "http://prometheus:9090"},
            "gates": [{"name": "errors", "query": "e", "max": 0.05}],
            "stages": [
                {"name": "half", "weight": 50, "bake": "10m"},
                {"name": "full", "weight": 100, "bake": "5m"},
            ],
        }
    )


PLAN = make_plan()


def asked(percent: int) -> ShiftRequest:
    return ShiftRequest(
        router=PLAN.router,
        stable=PLAN.stable,
        canary=PLAN.canary,
        split=TrafficSplit.canary_percent(percent),
    )


def progress(**changes: Any) -> RolloutProgress:
    return RolloutProgress(shifted_stage=0, clock=BakeClock(entered_at=AT), **changes)


def text_of(renderable: object) -> str:
    console = Console(width=400, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def terminated(reading: TrafficReading | None) -> TemporalRecords:
    return TemporalRecords(
        service="shop",
        workflow_id="rollout-shop",
        run_id="run-1",
        execution_status="terminated",
        started_at=AT,
        closed_at=AT + timedelta(minutes=3),
        task_queue="rollouts",
        worker="the run ended outside the workflow while baking",
        state="terminated",
        published_state="baking",
        stage="half",
        canary_weight=50,
        version="v2",
        ended="terminated, so no rollback ran: operator removed it",
        asked=asked(50),
        traffic=reading,
        as_of=AT + timedelta(minutes=4),
    )


# -- what the workflow says it asked for -------------------------------------------------------


def test_the_status_query_names_the_split_the_run_set() -> None:
    baking = status_of(PLAN, progress(state=RolloutState.BAKING, canary_weight=50), AT)
    assert baking.asked == asked(50)
    assert baking.asked is not None and baking.asked.router == PLAN.router


def test_a_rollback_under_way_asks_for_stable() -> None:
    back = status_of(PLAN, progress(state=RolloutState.ROLLING_BACK, canary_weight=50), AT)
    assert back.asked is not None and back.asked.split == TrafficSplit.canary_percent(0)


def test_a_run_refused_its_target_asked_for_nothing() -> None:
    refused = RolloutProgress(state=RolloutState.REFUSED)
    assert status_of(PLAN, refused, AT).asked is None


def test_an_answer_from_an_older_worker_reads_without_asked() -> None:
    older = status_of(PLAN, progress(state=RolloutState.BAKING), AT).model_dump(mode="json")
    del older["asked"]
    assert RolloutStatus.model_validate(older).asked is None


# -- what Temporal's records say it asked for --------------------------------------------------


def test_records_take_the_plan_from_the_runs_input_and_the_published_weight() -> None:
    start = RolloutInput(plan=PLAN)
    assert asked_of(start, 50) == asked(50)
    assert asked_of(None, 50) is None
    # No weight published (no search attributes): the weight the run was started with.
    carried = RolloutInput(plan=PLAN, progress=progress(canary_weight=25))
    assert asked_of(carried, None) == asked(25)
    assert asked_of(RolloutInput(plan=PLAN), None) is None


# -- a terminated run ---------------------------------------------------------------------------


def test_a_terminated_run_restored_by_its_lease_says_so() -> None:
    reading = TrafficReading(
        router=PLAN.router.describe(),
        routes=TrafficSplit.canary_percent(0),
        restores=[Restore(workflow_id=LEASE, running=False, done=True, text=RESTORED)],
    )
    records = terminated(reading)
    text = text_of(render.answer_view(records))
    assert "shop v2  terminated  from Temporal's records" in text
    assert f"Traffic: routes canary 0% now ({WHERE}) | last asked canary 50%" in text
    assert f"Restored: {RESTORED}" in text
    assert "last published: baking  stage 'half'  canary 50%" in text
    assert "Action needed" not in text
    shown = render.as_json(records)
    assert shown["state"] == "terminated" and shown["published_state"] == "baking"
    assert shown["asked"]["split"]["canary_weight"] == 50
    assert shown["traffic"]["routes"]["canary_weight"] == 0
    assert shown["traffic"]["restores"][0]["workflow_id"] == LEASE
    assert shown["traffic"]["restores"][0]["done"] is True
    assert json.loads(json.dumps(shown)) == shown


def test_a_terminated_run_nobody_restores_says_what_to_do() -> None:
    reading = TrafficReading(router=PLAN.router.describe(), routes=TrafficSplit.canary_percent(50))
    reading.todo = traffic.todo(asked(50), reading, promoted=False)
    assert "nothing is putting stable back" in reading.todo
    assert "still sends canary 50% to 'shop-v2'" in reading.todo
    assert "`set weight shop/shop-v2 0` and `set weight shop/shop-v1 100`" in reading.todo
    text = text_of(render.answer_view(terminated(reading)))
    assert "Traffic: routes canary 50% now" in text
    assert f"Action needed: {reading.todo}" in text


def test_nothing_to_do_while_a_restore_runs_or_once_stable_is_back() -> None:
    restoring = TrafficReading(
        router=PLAN.router.describe(),
        routes=TrafficSplit.canary_percent(50),
        restores=[Restore(workflow_id=LEASE, running=True, done=False, text="putting it back")],
    )
    assert traffic.todo(asked(50), restoring, promoted=False) == ""
    assert "Restoring: putting it back" in text_of(render.answer_view(terminated(restoring)))
    back = TrafficReading(router=PLAN.router.describe(), routes=TrafficSplit.canary_percent(0))
    assert traffic.todo(asked(50), back, promoted=False) == ""
    # A promoted run's canary is the new stable: all traffic on it is what it meant.
    full = TrafficReading(router=PLAN.router.describe(), routes=TrafficSplit.canary_percent(100))
    assert traffic.todo(asked(100), full, promoted=True) == ""
    # ...unless a release set out to put stable back and did not.
    failed = full.model_copy(
        update={"restores": [Restore(workflow_id="r", running=False, done=False, text="failed")]}
    )
    assert "nothing is putting stable back" in traffic.todo(asked(100), failed, promoted=True)


# -- a promoted target the release put back -----------------------------------------------------


def promoted(reading: TrafficReading | None) -> ObservedStatus:
    answer = status_of(
        PLAN,
        progress(
            state=RolloutState.PROMOTED,
            canary_weight=100,
            stage_index=2,
            reason="all stages passed",
        ),
        AT,
    )
    return ObservedStatus(**dict(answer), traffic=reading)


def test_a_target_the_release_put_back_shows_canary_zero_and_the_restore() -> None:
    said = "the release put stable back through rollout-shop-restore"
    reading = TrafficReading(
        router=PLAN.router.describe(),
        routes=TrafficSplit.canary_percent(0),
        restores=[Restore(workflow_id="rollout-shop-restore", running=False, done=True, text=said)],
    )
    text = text_of(render.answer_view(promoted(reading)))
    assert text.startswith("shop v2  promoted, then put back on stable  canary 100%")
    assert f"Traffic: routes canary 0% now ({WHERE})" in text
    assert "| last asked canary 100%" in text and "not what the run asked" not in text
    assert f"Restored: {said}" in text
    shown = render.as_json(promoted(reading))
    assert shown["source"] == "query" and shown["state"] == "promoted"
    assert shown["traffic"]["routes"]["canary_weight"] == 0
    assert shown["traffic"]["restores"][0]["workflow_id"] == "rollout-shop-restore"


def test_a_router_that_cannot_be_read_says_so_beside_what_was_asked() -> None:
    reading = TrafficReading(
        router=PLAN.router.describe(),
        unreadable=f"cannot read {WHERE} from here: connection refused",
    )
    text = text_of(render.answer_view(promoted(reading)))
    said = f"Traffic: cannot read {WHERE} from here: connection refused | last asked canary 100%"
    assert said in text


# -- a restore the router refuses for good -----------------------------------------------------


def test_a_blocked_restore_comes_right_under_the_headline() -> None:
    blocked = "stable is not back: haproxy shop refuses (no such server). Fix it by hand"
    answer = status_of(
        PLAN,
        progress(
            state=RolloutState.ROLLING_BACK,
            canary_weight=50,
            target=TargetHold(restore_blocked=blocked),
        ),
        AT,
    )
    lines = text_of(render.answer_view(answer)).splitlines()
    assert lines[1] == f"RESTORE BLOCKED: {blocked}"
    assert (
        lines[2]
        == "Traffic: the run last asked haproxy shop via tcp://127.0.0.1:9999 for canary 0%"
    )
    assert f"RESTORE BLOCKED: {blocked}" in render.progress_line(answer)


# -- reading the router from here, bounded -------------------------------------------------------


@pytest.fixture
def silent_router() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a router hung mid-incident."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_router_nobody_listens_on_is_named_with_the_error() -> None:
    where = f"tcp://127.0.0.1:{unused_port()}"
    request = asked(50).model_copy(update={"router": make_plan(where).router})
    said = asyncio.run(traffic.read_router(request))
    assert isinstance(said, str)
    assert said.startswith(f"cannot read haproxy shop via {where} from here: ")
    assert "nothing listens on" in said


def test_a_router_that_never_answers_is_given_up_on_within_the_bound(silent_router: str) -> None:
    slow = make_plan(silent_router).router.model_copy(update={"timeout": timedelta(seconds=30)})
    request = asked(50).model_copy(update={"router": slow})
    started = time.monotonic()
    said = asyncio.run(traffic.read_router(request))
    took = time.monotonic() - started
    assert said == f"cannot read haproxy shop via {silent_router} from here: no answer within 2s"
    assert took < traffic.ROUTER_READ_BOUND.total_seconds() + 1.0, took
