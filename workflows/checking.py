"""A gate check from the workflow: one local activity, and what a check that cannot run means."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import check_gates, check_gates_timeout
    from plans import Gate, GateCheck, GateOutcome, Plan, Stage, Verdict
    from workflows.target import root_message

CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


async def judge_gates(plan: Plan, stage: Stage, gates: list[Gate]) -> list[Verdict]:
    """One verdict per gate; a check that cannot run makes every gate inconclusive."""
    if not gates:
        return []
    try:
        # A local activity: its result is one marker in history instead of an activity's
        # three events and a workflow task of its own, which keeps week-long runs small.
        named = {g.source for g in gates if g.source is not None}
        request = GateCheck(
            source=plan.metrics,
            sources={name: plan.sources[name] for name in sorted(named)},
            gates=gates,
            placeholders=plan.placeholders(),
        )
        verdicts: list[Verdict] = await workflow.execute_local_activity(
            check_gates,
            request,
            start_to_close_timeout=check_gates_timeout(request),
            retry_policy=CHECK_RETRY,
            summary=f"check {len(gates)} gate(s) at {stage.weight}%",
        )
    except ActivityError as error:
        reason = f"gate check failed: {root_message(error)}"
        verdicts = [
            Verdict(gate=g.name, outcome=GateOutcome.INCONCLUSIVE, reason=reason, at=workflow.now())
            for g in gates
        ]
    return verdicts
