"""A stage with max_bake bakes on while its gates lack samples, then pauses at max_bake."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from client.operations import start_rollout
from client.steering import send_command
from plans import CommandKind, GateCheck, GateOutcome, OperatorCommand, RolloutState, Verdict
from tests.workflow.conftest import Doubles, make_plan, verdicts
from tests.workflow.test_rollout_workflow import finish, status_of, until
from worker.main import workflow_runner
from workflows.rollout import RolloutWorkflow

GATES = [{"name": "errors", "preset": "demo-error-rate", "kind": "sequential"}]
NEEDED = 500.0


def stages(max_bake: str | None = "1h") -> list[dict[str, object]]:
    first: dict[str, object] = {"name": "canary", "weight": 5, "bake": "30m", "check_every": "10m"}
    if max_bake is not None:
        first["max_bake"] = max_bake
    return [first, {"name": "half", "weight": 50, "bake": "30m", "check_every": "10m"}]


def judge_by_requests(per_check: float):  # type: ignore[no-untyped-def]
    """Every check passes; the canary's requests grow by ``per_check`` in its first stage."""

    def judge(n: int, check: GateCheck) -> list[Verdict]:
        evidence = per_check * n
        return [
            v.model_copy(update={"evidence": evidence, "evidence_needed": NEEDED})
            for v in verdicts(check, GateOutcome.PASS)
        ]

    return judge


def texts(status, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.text for e in status.events if e.kind == kind]


async def test_a_stage_short_of_samples_extends_its_bake_and_says_so(env, worker, doubles) -> None:
    doubles.judge = judge_by_requests(100)  # 500 requests at the fifth check (50m)
    plan = make_plan(gates=GATES, stages=stages(), notify={"webhook_url_env": "ROLLOUT_TEST_HOOK"})
    handle = await start_rollout(env.client, plan, worker)
    extended = await until(handle, lambda s: bool(texts(s, "bake")), env)
    assert extended.stage_index == 0 and extended.bake_total_s == 3600
    (said,) = texts(extended, "bake")
    assert "baked 30m but errors has 300 of the 500 canary requests it needs" in said
    assert "up to 1h" in said
    assert any("its bake is extended" in n for n in doubles.notes)
    assert any(n.notice.kind == "bake_extended" for n in doubles.notifications if n.notice)
    moved = await until(handle, lambda s: s.stage_index == 1, env)
    assert doubles.checks[:5] == [5, 5, 5, 5, 5] and doubles.shifts[:2] == [5, 50]
    ended = texts(moved, "bake")[-1]
    assert "have the samples they need after 50m" in ended
    assert moved.state != RolloutState.PAUSED
    await finish(env, handle)
    # The run replays on this code; with ROLLOUT_CAPTURE_HISTORIES=1 it is kept for the
    # replay test of every later version (tests/workflow/test_replay.py).
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[RolloutWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert replayed.replay_failure is None
    if os.environ.get("ROLLOUT_CAPTURE_HISTORIES") == "1":
        kept = Path(__file__).parent.parent / "histories" / "bake_extended.json"
        kept.write_text(history.to_json())


async def test_the_extension_stops_at_max_bake_and_pauses(env, worker, doubles: Doubles) -> None:
    doubles.judge = lambda n, check: [
        v.model_copy(update={"evidence": 100.0, "evidence_needed": NEEDED})
        for v in verdicts(check, GateOutcome.PASS)
    ]
    plan = make_plan(gates=GATES, stages=stages("50m"))
    handle = await start_rollout(env.client, plan, worker)
    paused = await until(handle, lambda s: s.state == RolloutState.PAUSED, env)
    assert paused.pause_cause == "gates" and paused.stage_index == 0
    assert paused.bake_elapsed_s >= 50 * 60 and doubles.shifts == [5]
    (why,) = [e.text for e in paused.events if e.kind == "pause"]
    assert "reached its max_bake 50m" in why and "100 of the 500" in why
    await env.sleep(timedelta(hours=1))
    still = await status_of(handle)
    assert still.state == RolloutState.PAUSED and doubles.shifts == [5]
    # A person who retries goes on with the gates as they are: no second extension.
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.RETRY, by="ana")
    )
    assert record.accepted
    await until(handle, lambda s: s.stage_index == 1, env)
    assert doubles.shifts[:2] == [5, 50]
    assert len([e for e in (await status_of(handle)).events if e.kind == "bake"]) == 1
    await finish(env, handle)


async def test_conclusive_gates_do_not_extend(env, worker, doubles: Doubles) -> None:
    doubles.judge = judge_by_requests(1000)  # enough from the first check on
    handle = await start_rollout(env.client, make_plan(gates=GATES, stages=stages()), worker)
    moved = await until(handle, lambda s: s.stage_index == 1, env)
    assert not texts(moved, "bake")
    # The stage went on when its bake ended, at its third check.
    assert doubles.checks.count(5) == 3
    await finish(env, handle)


async def test_without_max_bake_a_short_stage_goes_on_as_before(env, worker, doubles) -> None:
    doubles.judge = judge_by_requests(10)
    handle = await start_rollout(env.client, make_plan(gates=GATES, stages=stages(None)), worker)
    moved = await until(handle, lambda s: s.stage_index == 1, env)
    assert not texts(moved, "bake") and doubles.checks.count(5) == 3
    await finish(env, handle)
