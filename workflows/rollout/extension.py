"""A stage's bake extended while its gates lack the samples to judge, up to its ``max_bake``.

When a stage with ``max_bake`` ends its bake and a gate it checks is still inconclusive, or
has fewer canary requests than its test needs to show the regression it is tuned to find
(``Verdict.evidence_needed``), the bake runs on: the stage goes on as soon as every gate has
what it needs and passes, and pauses at ``max_bake`` if one still has not (`rollout retry`
then goes on with the gates as they are). Each step is said in the audit trail and told.
A stage without ``max_bake`` never comes here, so its history is what it always was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import EventKind, GateOutcome, Plan, Stage, Verdict, format_duration
    from plans.runtime.progress import RolloutProgress
    from workflows.rollout import clock, decisions
    from workflows.rollout.notices import Notices

Until = Callable[[Plan, RolloutProgress, datetime], bool]


async def watch(
    plan: Plan,
    progress: RolloutProgress,
    now: datetime,
    until: Until,
    audit: Callable[[str, str], None],
    notices: Notices,
) -> None:
    """Extend the bake, end its extension, or pause at ``max_bake``, as the gates say."""
    stage = decisions.current_stage(plan, progress)
    if stage.max_bake is None or until is not decisions.bake_done:
        return
    bake = progress.clock
    if progress.paused or bake.extension == "over" or bake.checks == 0:
        return
    if progress.shifted_stage != progress.stage_index:
        return
    elapsed = clock.elapsed(bake, now)
    if elapsed < stage.bake.total_seconds():
        return
    short = short_of_samples(plan, progress, stage)
    name, most = stage.name, format_duration(stage.max_bake)
    if bake.extension == "":
        if not short:
            return
        clock.extend(bake)
        text = (
            f"stage {name!r} baked {format_duration(stage.bake)} but {short}:"
            f" its bake is extended, up to {most}"
        )
        audit("bake", text)
        await notices.send(EventKind.BAKE_EXTENDED, text, reason=text)
        return
    if not short:
        clock.end_extension(bake)
        took = _took(elapsed)
        audit("bake", f"stage {name!r}: its gates have the samples they need after {took}")
        return
    if elapsed >= stage.max_bake.total_seconds():
        clock.end_extension(bake)
        decisions.pause(progress, now, "gates")
        text = f"stage {name!r} reached its max_bake {most} and {short}"
        audit("pause", f"paused: {text}")
        await notices.gate_action("pause", text)


def short_of_samples(plan: Plan, progress: RolloutProgress, stage: Stage) -> str:
    """Which of the stage's gates lack samples, in words ('' when none does).

    A gate lacks them when its latest verdict is inconclusive (or missing), or when it has
    fewer canary requests than its test needs (dry-run gates decide nothing, so not them).
    """
    found = []
    for gate in plan.gates_for(stage):
        if gate.dry_run:
            continue
        verdict = progress.gates.verdicts.get(gate.name)
        if verdict is None or verdict.outcome == GateOutcome.INCONCLUSIVE:
            found.append(f"{gate.name} is inconclusive")
        elif verdict.outcome == GateOutcome.PASS and (left := _short(verdict)):
            found.append(f"{gate.name} has {left}")
    return "; ".join(found)


def _short(verdict: Verdict) -> str:
    have, need = verdict.evidence, verdict.evidence_needed
    if have is None or need is None or have >= need:
        return ""
    return f"{have:,.0f} of the {need:,.0f} canary requests it needs"


def _took(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))
