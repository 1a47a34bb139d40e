"""A gate check from the workflow: one local activity, and what a check that cannot run means."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import check_gates, check_gates_timeout, look, look_timeout
    from plans import (
        Gate,
        GateCheck,
        GateOutcome,
        Plan,
        Stage,
        TrafficSplit,
        Verdict,
        format_duration,
    )
    from plans.state import Look, RolloutProgress, Seen
    from workflows import decisions
    from workflows.failures import root_message
    from workflows.target import Target

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")

CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


async def judge_gates(plan: Plan, stage: Stage, gates: list[Gate]) -> list[Verdict]:
    """One verdict per gate; a check that cannot run makes every gate inconclusive."""
    if not gates:
        return []
    try:
        # A local activity: its result is one marker in history instead of an activity's
        # three events and a workflow task of its own, which keeps week-long runs small.
        request = gate_check(plan, gates)
        verdicts = await _check_locally(
            check_gates, request, check_gates_timeout(request), stage, gates
        )
    except ActivityError as error:
        verdicts = inconclusive(gates, f"gate check failed: {root_message(error)}")
    return verdicts


async def _check_locally(
    check: Callable[[RequestT], ResultT],
    request: RequestT,
    timeout: timedelta,
    stage: Stage,
    gates: list[Gate],
) -> ResultT:
    """Run one of the check's local activities, retried as checks are, summed up for people."""
    return await workflow.execute_local_activity(
        check,
        request,
        start_to_close_timeout=timeout,
        retry_policy=CHECK_RETRY,
        summary=f"check {len(gates)} gate(s) at {stage.weight}%",
    )


async def observe_and_judge(
    plan: Plan, stage: Stage, gates: list[Gate], target: Target, weight: int, one_look: bool
) -> tuple[TrafficSplit | None, list[Verdict]]:
    """Read the router back and judge the gates: in one local activity, or (older runs) two."""
    if not one_look:
        split, verdicts = await asyncio.gather(
            target.read(target.request(weight)), judge_gates(plan, stage, gates)
        )
        return split, verdicts
    request = Look(read=target.request(weight), check=gate_check(plan, gates) if gates else None)
    try:
        seen = await _check_locally(look, request, look_timeout(request), stage, gates)
    except ActivityError as error:
        reason = root_message(error)
        seen = Seen(unreadable=reason, verdicts=inconclusive(gates, f"check failed: {reason}"))
    return target.observed(seen.split, seen.unreadable), seen.verdicts


def gate_check(plan: Plan, gates: list[Gate]) -> GateCheck:
    """The request for these gates: the plan's source, the named sources they read."""
    named = {g.source for g in gates if g.source is not None}
    return GateCheck(
        source=plan.metrics,
        sources={name: plan.sources[name] for name in sorted(named)},
        gates=gates,
        placeholders=plan.placeholders(),
    )


def inconclusive(gates: list[Gate], reason: str) -> list[Verdict]:
    now = workflow.now()
    return [
        Verdict(gate=g.name, outcome=GateOutcome.INCONCLUSIVE, reason=reason, at=now) for g in gates
    ]


def discount_unobserved(
    stage: Stage, p: RolloutProgress, now: datetime, audit: Callable[[str, str], None]
) -> None:
    """Time with no check (worker, server or router away) is not counted as baked."""
    excess = decisions.unobserved_excess(stage, p.last_check_at, p.clock_running_since, now)
    if excess <= timedelta(0):
        return
    assert p.clock_running_since is not None and p.last_check_at is not None
    p.clock_running_since += excess
    audit(
        "gap",
        f"no check for {format_duration(now - p.last_check_at)}:"
        f" {format_duration(excess)} of it not counted as bake time",
    )
