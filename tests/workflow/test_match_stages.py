"""Stages with match in the workflow: each shift carries its stage's match, drift compares it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from client.operations import start_rollout
from plans import RequestMatch, RolloutState, ShiftRequest, TrafficSplit
from tests.workflow.conftest import Doubles, make_plan
from tests.workflow.test_rollout_workflow import settle, status_of, until

ROUTER = {
    "kind": "haproxy",
    "runtime_api": "/tmp/haproxy.sock",
    "backend": "app",
    "match_map": "/etc/haproxy/app-canary.map",
}
MATCH = {"header": "x-user-group", "exact": "internal"}
INTERNAL = RequestMatch(**MATCH)
STAGES = [
    {"name": "internal", "weight": 0, "bake": "1h", "check_every": "10m", "match": MATCH},
    {"name": "early", "weight": 10, "bake": "1h", "check_every": "10m", "match": MATCH},
    {"name": "half", "weight": 50, "bake": "1h", "check_every": "10m"},
]


async def test_each_shift_carries_its_stages_match_and_a_stage_without_clears_it(
    env, worker, doubles: Doubles
) -> None:
    handle = await start_rollout(env.client, make_plan(router=ROUTER, stages=STAGES), worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.splits == [
        TrafficSplit.canary_percent(0, INTERNAL),
        TrafficSplit.canary_percent(10, INTERNAL),
        TrafficSplit.canary_percent(50),
        TrafficSplit.canary_percent(100),
    ]
    final = await status_of(handle)
    assert not [e for e in final.events if e.kind == "drift"]


async def test_a_lost_match_is_drift_and_is_put_back(env, worker, doubles: Doubles) -> None:
    # The first check finds the weights right but the match gone (a reload emptied the map).
    doubles.router_reads = [TrafficSplit.canary_percent(0)]
    handle = await start_rollout(env.client, make_plan(router=ROUTER, stages=STAGES[:1]), worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert doubles.splits[:2] == [TrafficSplit.canary_percent(0, INTERNAL)] * 2
    final = await status_of(handle)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert len(drift) == 1 and "every request with header x-user-group exact 'internal'" in drift[0]


async def test_a_rollback_clears_the_match(env, worker, doubles: Doubles) -> None:
    plan = make_plan(router=ROUTER, stages=STAGES[:2])
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await handle.signal("rollback", {"by": "ops", "reason": "bad build"})
    with pytest.raises(WorkflowFailureError):
        await settle(env, handle)
    assert doubles.splits == [
        TrafficSplit.canary_percent(0, INTERNAL),
        TrafficSplit.canary_percent(0),
    ]


def test_the_matched_history_holds_shifts_with_and_without_a_match() -> None:
    # tests/histories/matched.json (scripts/capture_histories.py) replays in
    # test_replay.py; this says it is the run it claims to be.
    path = Path(__file__).parent.parent / "histories" / "matched.json"
    splits = []
    for event in json.loads(path.read_text())["events"]:
        scheduled = event.get("activityTaskScheduledEventAttributes")
        if scheduled and scheduled["activityType"]["name"] == "shift_traffic":
            data = base64.b64decode(scheduled["input"]["payloads"][0]["data"])
            splits.append(ShiftRequest.model_validate_json(data).split)
    assert splits == [
        TrafficSplit.canary_percent(0, INTERNAL),  # internal users first
        TrafficSplit.canary_percent(0, INTERNAL),  # the match put back after drift
        TrafficSplit.canary_percent(10),
        TrafficSplit.canary_percent(0),  # the rollback
    ]
