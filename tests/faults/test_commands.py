"""Commands in every state, twice and out of order: the run stays whole, each fate is known."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

import devstack
from client import operations
from plans import CommandKind, OperatorCommand, RolloutResult, RolloutState
from tests.faults.chaos import (
    AdminGate,
    WeightRecorder,
    baking,
    haproxy,
    quick_plan,
    temporal_cli,
    until,
)

pytestmark = pytest.mark.integration

Fate = tuple[str, str, bool]


class Operator:
    """Sends commands both ways and keeps what the run should have recorded."""

    def __init__(self, client: Client, service: str, handle: WorkflowHandle[Any, Any]) -> None:
        self.client = client
        self.service = service
        self.handle = handle
        self.recorded: list[Fate] = []
        self.count = 0

    async def update(self, kind: CommandKind, *, taken: bool, refusal: str = "") -> None:
        """The `rollout` CLI's way: an update, answered at once."""
        self.count += 1
        command = OperatorCommand(kind=kind, by=f"op{self.count}", reason=f"step {self.count}")
        if taken:
            record = await operations.send_command(self.client, self.service, command)
            assert record.accepted and record.kind == kind.value and record.via == "update"
            self.recorded.append((kind.value, f"op{self.count}", True))
        else:
            with pytest.raises(operations.CommandRefused, match=refusal):
                await operations.send_command(self.client, self.service, command)

    async def signal(self, kind: CommandKind, *, taken: bool) -> None:
        """The Temporal CLI's and UI's way: a signal, recorded with its fate."""
        self.count += 1
        before = len((await operations.status(self.client, self.service)).commands)
        await self.handle.signal(kind.value, {"by": f"op{self.count}", "reason": "signal"})
        status = await until(
            self.client,
            self.service,
            lambda s: len(s.commands) > before,
            what=f"the {kind.value} signal recorded",
        )
        record = status.commands[-1]
        assert (record.kind, record.by, record.via) == (kind.value, f"op{self.count}", "signal")
        assert record.accepted is taken, record.note
        assert taken or record.note
        self.recorded.append((kind.value, f"op{self.count}", taken))


async def test_commands_twice_and_out_of_order_through_a_whole_rollout(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    gate = AdminGate(stack.ports["haproxy_admin"])
    plan = quick_plan(
        stack,
        [
            {"name": "a", "weight": 20, "bake": "3s", "check_every": "1s", "approval": True},
            {"name": "b", "weight": 50, "bake": "10m", "check_every": "1s"},
            {"name": "c", "weight": 80, "bake": "10m", "check_every": "1s"},
        ],
        runtime_api=gate.runtime_api,
    )
    with WeightRecorder(stack) as weights, gate:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        op = Operator(client, plan.service, handle)
        await until(client, plan.service, baking(0), what="stage a baking")

        # Baking: approve too early, resume what is not paused, retry what gates did not pause.
        await op.update(CommandKind.APPROVE, taken=False, refusal="still baking")
        await op.signal(CommandKind.APPROVE, taken=False)
        await op.update(CommandKind.RESUME, taken=False, refusal="not paused")
        await op.signal(CommandKind.RESUME, taken=False)
        await op.update(CommandKind.RETRY, taken=False, refusal="only a rollout paused")

        # Paused, twice; the bake clock stands still while paused.
        await op.update(CommandKind.PAUSE, taken=True)
        await op.update(CommandKind.PAUSE, taken=False, refusal="already paused")
        await op.signal(CommandKind.PAUSE, taken=False)
        paused = await until(client, plan.service, lambda s: s.state == RolloutState.PAUSED)
        await asyncio.sleep(3.5)
        still = await operations.status(client, plan.service)
        assert still.state == RolloutState.PAUSED and still.stage_index == 0
        assert abs(still.bake_elapsed_s - paused.bake_elapsed_s) < 0.01
        await op.update(CommandKind.APPROVE, taken=False, refusal="still baking")
        await op.signal(CommandKind.RETRY, taken=False)
        await op.update(CommandKind.RESUME, taken=True)
        await op.signal(CommandKind.RESUME, taken=False)

        # Awaiting approval: approve, then approve again.
        await until(
            client,
            plan.service,
            lambda s: s.state == RolloutState.AWAITING_APPROVAL,
            what="stage a awaiting approval",
        )
        await op.signal(CommandKind.APPROVE, taken=True)
        await op.signal(CommandKind.APPROVE, taken=False)

        # Stage b: approve where no approval is asked, then promote twice while HAProxy's
        # admin API is away, so the promotion's shift hangs in its retries meanwhile.
        await until(client, plan.service, baking(1), what="stage b baking")
        await op.update(CommandKind.APPROVE, taken=False, refusal="does not ask for approval")
        gate.close()
        await op.update(CommandKind.PROMOTE, taken=True)
        await until(client, plan.service, lambda s: s.state == RolloutState.SHIFTING)
        await op.signal(CommandKind.PROMOTE, taken=False)
        await op.update(CommandKind.PROMOTE, taken=False, refusal="already being promoted")
        await op.signal(CommandKind.APPROVE, taken=False)
        gate.open()
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED

        # After the end: rollback and abort are refused by every path, and change nothing.
        for kind in (CommandKind.ROLLBACK, CommandKind.ABORT, CommandKind.PAUSE):
            with pytest.raises(operations.CommandRefused, match="has ended"):
                await operations.send_command(client, plan.service, OperatorCommand(kind=kind))
        with pytest.raises(RPCError, match="completed"):
            await handle.signal("rollback", {"by": "late", "reason": "too late"})
        code, _, error = await temporal_cli(
            stack,
            "workflow",
            "signal",
            "--workflow-id",
            plan.workflow_id,
            "--name",
            "rollback",
            "--input",
            '{"by": "late", "reason": "too late"}',
        )
        assert code != 0 and "completed" in error
        await asyncio.sleep(0.5)

    final = await operations.status(client, plan.service)
    assert final.state == RolloutState.PROMOTED and final.canary_weight == 100
    assert weights.canary_weights == [0, 20, 50, 100]
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (0, 100)
    assert [(c.kind, c.by, c.accepted) for c in final.commands] == op.recorded
    assert final.reason.startswith("promoted by op")
    stages = [e.text for e in final.events if e.kind == "stage"]
    assert stages == [
        "stage 1/3 'a' (20%) started",
        "stage 1/3 'a' (20%) passed",
        "stage 2/3 'b' (50%) started",
    ]


async def test_commands_while_rolling_back_are_refused_and_the_rollback_completes(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(stack, [{"name": "a", "weight": 40, "bake": "10m", "check_every": "1s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="stage a baking")
    sent = ["rollback", "rollback", "pause", "promote", "resume", "approve", "abort"]
    delivered = []
    for i, kind in enumerate(sent):
        try:
            await handle.signal(kind, {"by": f"op{i}", "reason": "storm"})
        except RPCError:
            # The run may end before the last ones arrive: the server refuses those.
            break
        delivered.append(f"op{i}")
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK and status.canary_weight == 0
    assert [c.by for c in status.commands] == delivered
    assert [c.accepted for c in status.commands] == [True] + [False] * (len(delivered) - 1)
    assert all("rolling back" in c.note or "rolled back" in c.note for c in status.commands[1:])
    assert status.reason == "rollback requested by op0: storm"
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)


async def test_rollback_during_the_promotion_shift_wins(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(stack, [{"name": "a", "weight": 30, "bake": "10m", "check_every": "1s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="stage a baking")
    await handle.signal("promote", {"by": "ana", "reason": "ship it"})
    await handle.signal("rollback", {"by": "lee", "reason": "wait, no"})
    try:
        result = await asyncio.wait_for(handle.result(), timeout=60)
    except WorkflowFailureError:
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.ROLLED_BACK
        assert [c.accepted for c in status.commands] == [True, True]
        expected = (100, 0)
    else:
        # The promotion finished before the rollback arrived: the rollback was refused.
        assert result.state == RolloutState.PROMOTED
        status = await operations.status(client, plan.service)
        assert [c.accepted for c in status.commands][:1] == [True]
        expected = (0, 100)
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == expected


async def test_pause_during_the_promotion_is_refused_or_holds_it(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    with AdminGate(stack.ports["haproxy_admin"]) as gate:
        plan = quick_plan(
            stack,
            [{"name": "a", "weight": 30, "bake": "10m", "check_every": "1s"}],
            runtime_api=gate.runtime_api,
        )
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(client, plan.service, baking(0), what="stage a baking")
        gate.close()
        await handle.signal("promote", {"by": "ana", "reason": "ship it"})
        await until(client, plan.service, lambda s: s.state == RolloutState.SHIFTING)
        await handle.signal("pause", {"by": "lee", "reason": "hold on"})
        await until(client, plan.service, lambda s: len(s.commands) == 2)
        gate.open()
        await asyncio.sleep(3.0)
    status = await operations.status(client, plan.service)
    pause = status.commands[-1]
    if pause.accepted:
        # Taken: then it must hold the rollout, not be ignored.
        assert status.state == RolloutState.PAUSED, status.state
    else:
        assert "promot" in pause.note
        assert status.state == RolloutState.PROMOTED and not status.paused
    with contextlib.suppress(WorkflowFailureError, asyncio.TimeoutError):
        await asyncio.wait_for(handle.result(), timeout=1)
