"""A gate check from the workflow: one local activity, and what a check that cannot run means."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import look, look_timeout
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
    from plans.runtime.checks import CheckRequest, Observation
    from plans.runtime.progress import RolloutProgress
    from workflows.failures import root_message
    from workflows.rollout import clock, decisions
    from workflows.rollout.target import Target

CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


async def observe_and_judge(
    plan: Plan,
    stage: Stage,
    gates: list[Gate],
    target: Target,
    weight: int,
    started_at: datetime | None = None,
) -> tuple[TrafficSplit | None, list[Verdict]]:
    """Read the router back and judge the gates, in one local activity.

    A local activity: its result is one marker in history instead of an activity's three
    events and a workflow task of its own, which keeps week-long runs small. A check that
    cannot run leaves the split unread and every gate inconclusive.
    """
    request = CheckRequest(
        read=target.request(weight),
        check=gate_check(plan, gates, started_at, stage.test_span) if gates else None,
    )
    try:
        found: Observation = await workflow.execute_local_activity(
            look,
            request,
            start_to_close_timeout=look_timeout(request),
            retry_policy=CHECK_RETRY,
            summary=f"check {len(gates)} gate(s) at {stage.weight}%",
        )
    except ActivityError as error:
        reason = root_message(error)
        found = Observation(
            unreadable=reason, verdicts=inconclusive(gates, f"check failed: {reason}")
        )
    return target.observed(found.split, found.unreadable), found.verdicts


def gate_check(
    plan: Plan,
    gates: list[Gate],
    started_at: datetime | None = None,
    span: timedelta | None = None,
) -> GateCheck:
    """The request for these gates: the plan's source, the named sources they read.

    The stage's start and planned span go with it only when a sequential gate reads them,
    so the checks of other plans are asked as before.
    """
    named = {g.source for g in gates if g.source is not None}
    sequential = any(g.kind == "sequential" for g in gates)
    return GateCheck(
        source=plan.metrics,
        sources={name: plan.sources[name] for name in sorted(named)},
        gates=gates,
        placeholders=plan.placeholders(),
        stage_started_at=started_at if sequential else None,
        stage_span=span if sequential and span else None,
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
    excess = decisions.unobserved_excess(stage, p.clock.last_check_at, p.clock.running_since, now)
    if excess <= timedelta(0):
        return
    assert p.clock.last_check_at is not None
    clock.discount(p.clock, excess)
    audit(
        "gap",
        f"no check for {format_duration(now - p.clock.last_check_at)}:"
        f" {format_duration(excess)} of it not counted as bake time",
    )
