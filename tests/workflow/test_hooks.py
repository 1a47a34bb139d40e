"""Hooks in the workflow: gates answering 2xx, 202 then 2xx, 500, no answer; on_rollback hooks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.operations import send_command, start_rollout
from plans import CommandKind, GateOutcome, OperatorCommand, RolloutState
from plans.hooks import HookAnswer, HookCall, Smoke
from tests.workflow.conftest import Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, status_of, until
from workflows.rollout import RolloutWorkflow
from workflows.rollout.hooks import next_wait

STAGES = [
    {"name": "ten", "weight": 10, "bake": "30m", "check_every": "10m"},
    {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
]
URL = "http://cab.test/approve/$service?stage=$stage"


@dataclass
class Call:
    call: HookCall
    weight: int  # the canary's weight on the router when the hook was called
    try_: int  # the activity's attempt


@dataclass
class Receiver:
    """The hooks' other end: answers from a script per hook name, then 200; records calls."""

    doubles: Doubles
    script: dict[str, list[HookAnswer | Exception]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    smoke: HookAnswer = field(default_factory=lambda: HookAnswer(status=200, excerpt="ok"))
    smokes: list[int] = field(default_factory=list)

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.call.hook.name == name]

    def activities(self) -> list[Any]:
        @activity.defn(name="call_hook")
        def call_hook(call: HookCall) -> HookAnswer:
            self.calls.append(Call(call, self.doubles.weight, activity.info().attempt))
            answers = self.script.get(call.hook.name, [])
            answer = answers.pop(0) if answers else HookAnswer(status=200)
            if isinstance(answer, Exception):
                raise answer
            return answer

        @activity.defn(name="smoke_check")
        def smoke_check(smoke: Smoke) -> HookAnswer:
            self.smokes.append(self.doubles.weight)
            return self.smoke

        return [call_hook, smoke_check]


@pytest.fixture
def receiver(doubles: Doubles) -> Receiver:
    return Receiver(doubles)


@pytest.fixture
async def hooked(
    env: WorkflowEnvironment, doubles: Doubles, receiver: Receiver
) -> AsyncIterator[str]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=doubles.activities() + receiver.activities(),
            activity_executor=executor,
        ):
            yield queue


def hook(name: str, on: str = "before_stage", **extra: Any) -> dict[str, Any]:
    return {"name": name, "on": on, "url": URL, "retries": 1, **extra}


def hook_events(status: Any) -> list[str]:
    return [e.text for e in status.events if e.kind == "hook"]


async def test_a_gate_answering_2xx_lets_each_stage_go_on(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    plan = make_plan(stages=STAGES, hooks=[hook("cab", secret_env="CAB_SECRET")])
    handle = await start_rollout(env.client, plan, hooked)
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    calls = receiver.named("cab")
    assert [c.call.payload.next_stage for c in calls] == ["ten", "full"]
    assert [c.call.payload.stage for c in calls] == ["ten", "ten"]  # "full" asked at ten's end
    assert [c.call.payload.next_weight for c in calls] == [10, 100]
    assert [c.weight for c in calls] == [0, 10]  # asked before each shift
    first = calls[0].call.payload
    assert first.version == 1 and first.service == plan.service and first.phase == "before_stage"
    assert first.rollout_id == plan.workflow_id and first.attempt == 1
    assert first.versions == {"stable": "stable", "canary": "canary", "version": "v2"}
    assert first.idempotency_key != calls[1].call.payload.idempotency_key
    assert calls[1].call.payload.verdicts[0].gate == "error-rate"
    # Only the names of secrets travel: the hook as the activity got it.
    assert calls[0].call.hook.secret_env == "CAB_SECRET"
    events = hook_events(await status_of(handle))
    assert events == [
        "gate hook cab at before_stage (ask 1): answered 200",
        "gate hook cab at before_stage (ask 1): answered 200",
    ]


async def test_a_gate_answering_202_is_asked_again_after_retry_after(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.script["cab"] = [
        HookAnswer(status=202, retry_after_s=3600, excerpt='{"retry_after": 3600}'),
        HookAnswer(status=202, retry_after_s=1800),
        HookAnswer(status=200, excerpt="approved"),
    ]
    plan = make_plan(stages=STAGES, hooks=[hook("cab", stages=["ten"])])
    handle = await start_rollout(env.client, plan, hooked)
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    calls = [c.call.payload for c in receiver.named("cab")]
    assert [p.attempt for p in calls] == [1, 2, 3]
    assert len({p.idempotency_key for p in calls}) == 1
    assert calls[1].at - calls[0].at >= timedelta(hours=1)
    assert calls[2].at - calls[1].at >= timedelta(minutes=30)
    assert all(c.weight == 0 for c in receiver.named("cab"))  # no traffic until it said yes
    assert doubles.shifts[:2] == [10, 100]
    events = hook_events(await status_of(handle))
    assert events[-1] == "gate hook cab at before_stage (ask 3): answered 200: approved"


async def test_a_stage_waiting_on_a_202_is_still_checked_and_rolls_back_on_a_failing_gate(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    later = HookAnswer(status=202, retry_after_s=3600)
    receiver.script["cab"] = [later] * 50
    # ten bakes 30m with a check every 10m (3 checks); then the gate turns bad while the
    # hook for "full" keeps answering 202.
    doubles.judge = lambda n, check: verdicts(
        check, GateOutcome.PASS if n <= 5 else GateOutcome.FAIL, 0.0 if n <= 5 else 0.5
    )
    plan = make_plan(stages=STAGES, hooks=[hook("cab", stages=["full"])])
    handle = await start_rollout(env.client, plan, hooked)
    message = await rolled_back(env, handle)
    assert "error-rate" in message
    asks = receiver.named("cab")
    assert 1 <= len(asks) <= 2 and all(c.weight == 10 for c in asks)
    assert len(doubles.checks) >= 5 + 3  # checked on through the wait, to the gate's limit
    assert 100 not in doubles.shifts and doubles.weight == 0


async def test_a_202_at_a_stage_end_asks_again_on_time_while_the_stage_is_watched(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.script["cab"] = [HookAnswer(status=202, retry_after_s=1500), HookAnswer(status=204)]
    plan = make_plan(stages=STAGES, hooks=[hook("cab", stages=["full"])])
    handle = await start_rollout(env.client, plan, hooked)
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    first, second = (c.call.payload for c in receiver.named("cab"))
    assert timedelta(minutes=25) <= second.at - first.at < timedelta(minutes=30)
    assert second.attempt == 2 and second.current_weight == 10 and second.next_stage == "full"
    assert doubles.checks.count(10) >= 3 + 2  # ten's bake, then checks during the wait


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (
            ApplicationError(
                "hook cab answered 500 Internal Server Error: boom", type="HookServerError"
            ),
            "HookServerError: hook cab answered 500 Internal Server Error: boom",
        ),
        (ApplicationError("hook cab: no answer within 10s", type="HookUnreachable"), "within 10s"),
    ],
)
async def test_a_gate_answering_500_or_not_at_all_rolls_back(
    env: WorkflowEnvironment,
    hooked: str,
    doubles: Doubles,
    receiver: Receiver,
    failure: Exception,
    said: str,
) -> None:
    receiver.script["cab"] = [failure, failure]
    stages = [{**STAGES[0], "name": "first"}, {**STAGES[0], "name": "second", "weight": 50}]
    plan = make_plan(stages=stages, hooks=[hook("cab", stages=["second"])])
    handle = await start_rollout(env.client, plan, hooked)
    message = await rolled_back(env, handle)
    assert "gate hook cab at before_stage" in message and said in message
    assert [c.try_ for c in receiver.named("cab")] == [1, 2]  # retries: 1
    assert 50 not in doubles.shifts and doubles.weight == 0


async def test_on_rollback_hooks_run_after_stable_is_back(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.script["cab"] = [HookAnswer(status=403, excerpt="change window closed")]
    hooks = [
        hook("cab", stages=["full"]),
        hook("down-migration", on="on_rollback", mode="check"),
        hook("pager", on="event", mode="notify", events=["rolled_back"]),
    ]
    plan = make_plan(stages=STAGES, hooks=hooks)
    handle = await start_rollout(env.client, plan, hooked)
    message = await rolled_back(env, handle)
    assert "answered 403: change window closed" in message
    (down,) = receiver.named("down-migration")
    assert down.weight == 0 and doubles.shifts[-1] == 0  # after the restore
    assert down.call.payload.phase == "on_rollback" and down.call.payload.current_weight == 0
    assert "change window closed" in down.call.payload.reason
    (pager,) = receiver.named("pager")
    assert pager.call.payload.phase == "rolled_back"
    names = [c.call.hook.name for c in receiver.calls]
    assert names == ["cab", "down-migration", "pager"]


async def test_failing_checks_count_to_their_limit_and_notify_hooks_never_block(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    down = ApplicationError("hook chat answered 503 Service Unavailable", type="HookServerError")
    receiver.script["chat"] = [down, down]
    receiver.script["tests"] = [HookAnswer(status=409, excerpt="2 failed")]
    hooks = [
        hook("chat", on="before_rollout", mode="notify"),
        hook("tests", mode="check", failure_limit=2),
    ]
    plan = make_plan(stages=STAGES, hooks=hooks)
    handle = await start_rollout(env.client, plan, hooked)
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    events = hook_events(await status_of(handle))
    assert (
        "notify hook chat at before_rollout (ask 1):"
        " HookServerError: hook chat answered 503 Service Unavailable" in events
    )
    assert any("failure 1 of 2 in a row" in e for e in events)
    assert [c.call.payload.phase for c in receiver.calls[:2]] == ["before_rollout"] * 2


async def test_a_failing_smoke_check_rolls_back_before_any_user_traffic(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.smoke = HookAnswer(status=500, error="request 1 of 3 answered 500, not 200")
    plan = make_plan(stages=STAGES, smoke={"url": "http://127.0.0.1:8081/health"})
    handle = await start_rollout(env.client, plan, hooked)
    message = await rolled_back(env, handle)
    assert message == "rolled back: smoke check failed: request 1 of 3 answered 500, not 200"
    assert receiver.smokes == [0] and not any(doubles.shifts)


async def test_a_check_pausing_holds_the_next_stage_until_resumed_and_checks_go_on(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.script["tests"] = [HookAnswer(status=409, excerpt="3 failed")]
    tests = hook("tests", mode="check", on_fail="pause", stages=["full"])
    plan = make_plan(stages=STAGES, hooks=[tests])
    handle = await start_rollout(env.client, plan, hooked)
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert paused.canary_weight == 10 and paused.pause_cause == "hooks"
    checks = len(doubles.checks)
    await skip(env, timedelta(hours=1))
    assert len(doubles.checks) > checks and doubles.weight == 10  # checked, not shifted
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.RESUME, by="ana")
    )
    assert record.accepted
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    assert doubles.shifts[:2] == [10, 100] and len(receiver.named("tests")) == 1


async def test_blue_green_smokes_the_preview_and_asks_before_the_flip(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    plan = make_plan(
        stages=[],
        strategy="blue_green",
        blue_green={"preview": "10m", "auto_promote_after": "20m", "post_promotion_for": "30m"},
        hooks=[hook("cab", on="before_promote")],
        smoke={"url": "http://green.preview.test/health", "expect_body": "ok"},
    )
    handle = await start_rollout(env.client, plan, hooked)
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    assert doubles.shifts == [0, 100]
    assert receiver.smokes == [0]  # on the preview route, before the flip
    (cab,) = receiver.named("cab")
    assert cab.weight == 0 and cab.call.payload.next_weight == 100


async def test_a_gate_still_answering_202_after_max_wait_rolls_back(
    env: WorkflowEnvironment, hooked: str, doubles: Doubles, receiver: Receiver
) -> None:
    receiver.script["cab"] = [HookAnswer(status=202, retry_after_s=3600)] * 10
    plan = make_plan(stages=STAGES, hooks=[hook("cab", stages=["ten"], max_wait="3h30m")])
    handle = await start_rollout(env.client, plan, hooked)
    message = await rolled_back(env, handle)
    assert "gate hook cab at before_stage still 202 after max_wait 3h30m" in message
    assert [c.call.payload.attempt for c in receiver.named("cab")] == [1, 2, 3, 4]
    assert not any(doubles.shifts)


@pytest.mark.parametrize(
    ("retry_after", "waited", "expected"),
    [
        (1.0, timedelta(0), timedelta(seconds=1)),
        (None, timedelta(0), timedelta(seconds=30)),
        (0.0, timedelta(0), timedelta(seconds=1)),
        (1e300, timedelta(0), timedelta(hours=1)),
        (1.0, timedelta(seconds=1000), timedelta(seconds=10)),  # a hundredth of the wait
        (1.0, timedelta(days=30), timedelta(hours=1)),
    ],
)
def test_how_long_until_a_202_is_asked_again(
    retry_after: float | None, waited: timedelta, expected: timedelta
) -> None:
    assert next_wait(HookAnswer(status=202, retry_after_s=retry_after), waited) == expected
