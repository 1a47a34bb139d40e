"""Whatever stops a rollout, stable comes back first and nothing cancels it meanwhile."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.operations import start_rollout
from plans import Notification, RolloutState, ShiftRequest, TrafficSplit
from plans.hooks import HookCall
from plans.runtime.inputs import RolloutInput
from plans.runtime.visibility import ROLLOUT_WORKFLOW
from tests.workflow.conftest import Doubles, make_plan, skip
from tests.workflow.test_hooks import Receiver, hook
from tests.workflow.test_rollout_workflow import settle, status_of, until
from workflows.rollout import RolloutWorkflow

ONE_STAGE = [{"name": "ten", "weight": 10, "bake": "2h", "check_every": "10m"}]
CHANNEL = {"channels": [{"name": "ops", "url_env": "ROLLOUT_TEST_OPS_URL"}]}


@contextlib.asynccontextmanager
async def worker_with(
    env: WorkflowEnvironment, doubles: Doubles, *replacing: Callable[..., Any]
) -> AsyncIterator[str]:
    """A worker with the doubles, some of them replaced by these activities (by name)."""
    queue = f"stop-{uuid.uuid4().hex[:8]}"
    names = {a.__name__ for a in replacing}
    own = [
        a for a in doubles.activities() + Receiver(doubles).activities() if a.__name__ not in names
    ]
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=[*own, *replacing],
            activity_executor=executor,
        ):
            yield queue


def restore_failing(doubles: Doubles, times: int) -> Callable[..., Any]:
    """A router whose restores fail ``times`` attempts, then work; shifts up always work."""
    left = [times]

    @activity.defn(name="shift_traffic")
    def shift_traffic(req: ShiftRequest) -> TrafficSplit:
        if req.split.canary_weight == 0 and left[0] > 0:
            left[0] -= 1
            raise ApplicationError("admin socket unavailable", type="RouterUnreachable")
        doubles.shifts.append(req.split.canary_weight)
        doubles.splits.append(req.split)
        return req.split

    return shift_traffic


async def rolling_back(env: WorkflowEnvironment, handle: Any) -> None:
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    await handle.signal("rollback", {"by": "ops", "reason": "bad build"})
    await until(handle, lambda s: s.state == RolloutState.ROLLING_BACK, env, timedelta(seconds=5))


async def test_a_cancel_during_a_failing_restore_waits_for_stable(env, doubles) -> None:
    async with worker_with(env, doubles, restore_failing(doubles, times=12)) as stack:
        handle = await start_rollout(env.client, make_plan(stages=ONE_STAGE), stack)
        await rolling_back(env, handle)
        # A round of restore attempts has failed; then the cancel comes (as a release closing
        # its children sends it).
        await until(handle, lambda s: s.restore_blocked != "", env, timedelta(seconds=10))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await settle(env, handle, step=timedelta(seconds=30))
        assert isinstance(ended.value.cause, CancelledError)
        assert doubles.shifts == [10, 0]  # the restore went on after the cancel, and held
        final = await status_of(handle)
        assert final.state == RolloutState.ROLLED_BACK and final.canary_weight == 0
        assert final.restore_blocked == ""
        texts = [(e.kind, e.text) for e in final.events]
        assert ("cancel", "cancel asked while stable is put back: after it") in texts


async def test_a_second_rollback_during_a_restore_is_refused_and_the_restore_goes_on(
    env, doubles
) -> None:
    async with worker_with(env, doubles, restore_failing(doubles, times=7)) as stack:
        handle = await start_rollout(env.client, make_plan(stages=ONE_STAGE), stack)
        await rolling_back(env, handle)
        await handle.signal("rollback", {"by": "someone-else", "reason": "also bad"})
        with pytest.raises(WorkflowFailureError):
            await settle(env, handle, step=timedelta(seconds=30))
        final = await status_of(handle)
        assert final.state == RolloutState.ROLLED_BACK and doubles.shifts == [10, 0]
        second = [c for c in final.commands if c.by == "someone-else"]
        assert second and not second[0].accepted and "rolling back" in second[0].note


async def test_a_canary_server_gone_from_the_router_counts_as_restored(env, doubles) -> None:
    @activity.defn(name="shift_traffic")
    def shift_traffic(req: ShiftRequest) -> TrafficSplit:
        if req.split.canary_weight == 0:
            raise ApplicationError(
                "HAProxy backend 'app' no longer has the canary server 'canary'",
                type="CanaryGone",
                non_retryable=True,
            )
        doubles.shifts.append(req.split.canary_weight)
        return req.split

    async with worker_with(env, doubles, shift_traffic) as stack:
        handle = await start_rollout(env.client, make_plan(stages=ONE_STAGE), stack)
        await rolling_back(env, handle)
        with pytest.raises(WorkflowFailureError):
            await settle(env, handle, step=timedelta(seconds=30))
        final = await status_of(handle)
        assert final.state == RolloutState.ROLLED_BACK and final.canary_weight == 0
        said = [e.text for e in final.events if e.kind == "restore"]
        assert said and "no longer has the canary server" in said[0]
        assert "counted as restored" in said[0]


async def test_a_router_refusing_for_good_pages_rarely_keeps_history_bounded_and_says_what_to_do(
    env, doubles
) -> None:
    doubles.shift_failures = 0
    told: list[Notification] = []
    doubles.on_notify = told.append
    async with worker_with(env, doubles, restore_failing(doubles, times=10**6)) as stack:
        plan = make_plan(stages=ONE_STAGE, notify=CHANNEL)
        handle = await start_rollout(env.client, plan, stack)
        await rolling_back(env, handle)
        status = await until(
            handle,
            lambda s: s.run_count > 1,
            env,
            timedelta(minutes=30),
            limit=200,
        )
        # A new run goes on restoring: the history of one stays bounded.
        assert status.state == RolloutState.ROLLING_BACK
        assert "stable is not back" in status.restore_blocked
        assert "put stable back by hand" in status.restore_blocked
        assert "every 300 s" in status.restore_blocked  # tries again every 5 minutes at most
        failing = [n for n in told if n.notice and n.notice.kind == "restore_failing"]
        # Paged at rounds 1, 2, 4, ... 64: seven pages for a hundred rounds, all critical.
        assert len(failing) == 7
        assert all(n.notice and n.notice.kind.severity == "critical" for n in failing)
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")


async def test_the_router_comes_first_when_hooks_and_channels_never_answer(
    env: WorkflowEnvironment, doubles: Doubles
) -> None:
    calls: list[int] = []

    # The rollback's own hook calls and messages (the start's may still be retried meanwhile).
    rollback_events = {"rollback_started", "rolled_back"}

    @activity.defn(name="call_hook")
    def call_hook(call: HookCall) -> Any:
        if call.payload.phase in rollback_events:
            calls.append(doubles.weight)
        raise ApplicationError("hook receiver down", type="HookUnreachable")

    @activity.defn(name="notify")
    def notify(message: Notification) -> None:
        if message.notice is not None and message.notice.kind in rollback_events:
            calls.append(doubles.weight)
        raise ApplicationError("channel down", type="NotifierUnreachable")

    async with worker_with(env, doubles, call_hook, notify) as stack:
        plan = make_plan(
            stages=ONE_STAGE,
            notify=CHANNEL,
            hooks=[
                hook("pager", on="event", mode="notify", events=["rollback_started"], retries=20)
            ],
        )
        handle = await start_rollout(env.client, plan, stack)
        await until(handle, lambda s: s.state == RolloutState.BAKING, env)
        await handle.signal("rollback", {"by": "ops", "reason": "bad build"})
        with pytest.raises(WorkflowFailureError):
            await settle(env, handle, step=timedelta(minutes=1))
        assert doubles.shifts == [10, 0]
        # Every hook call and message of the rollback went out with stable already back.
        assert calls and set(calls) == {0}
        final = await status_of(handle)
        assert final.state == RolloutState.ROLLED_BACK


async def test_a_run_carrying_a_refused_restore_goes_on_restoring(env, doubles) -> None:
    async with worker_with(env, doubles, restore_failing(doubles, times=0)) as stack:
        plan = make_plan(stages=ONE_STAGE)
        progress = {
            "state": "rolling_back",
            "stopping_as": "rolled_back",
            "reason": "rollback requested by ops",
            "canary_weight": 10,
            "shifted_stage": 0,
            "run_count": 2,
            "target": {
                "owned": True,
                "compensations": [
                    {
                        "shift": {
                            "router": plan.router.model_dump(),
                            "stable": "stable",
                            "canary": "canary",
                            "split": {"stable_weight": 100, "canary_weight": 0},
                        },
                        "description": "restore 100% stable",
                    }
                ],
            },
        }
        handle = await env.client.start_workflow(
            ROLLOUT_WORKFLOW,
            RolloutInput.model_validate({"plan": plan, "progress": progress}),
            id=f"rollout-{plan.service}",
            task_queue=stack,
        )
        with pytest.raises(WorkflowFailureError):
            await settle(env, handle)
        final = await status_of(handle)
        assert final.state == RolloutState.ROLLED_BACK and doubles.shifts == [0]
        await skip(env, timedelta(seconds=1))
