"""Gates that ask for a gain (``direction: improve``): waited for while the stage bakes.

Such a gate is inconclusive until its gain is shown. That is no lack of data: while the
stage bakes, the stage simply waits for it, so these checks do not count towards the
gate's ``inconclusive_limit``. Once the bake is over, a gain still not shown is acted on
at once, as an inconclusive gate whose streak reached its limit (a ``critical`` gate
pauses the stage), and again every ``inconclusive_limit`` checks while it goes on. A stage
with ``max_bake`` first extends its bake for it, as for a gate short of samples, and pauses
at ``max_bake``. A gate without data is inconclusive as any other.
"""

from __future__ import annotations

from datetime import datetime

from plans import ComparingGate, Gate, GateAction, GateOutcome, Plan, Verdict
from plans.runtime.progress import RolloutProgress
from workflows.rollout import decisions


def awaits_gain(gate: Gate | None, verdict: Verdict) -> bool:
    """A ``direction: improve`` gate whose test ran and has not shown the gain yet.

    Its verdict is inconclusive with an effect measured; one without data has none.
    """
    return (
        isinstance(gate, ComparingGate)
        and gate.direction == "improve"
        and verdict.outcome == GateOutcome.INCONCLUSIVE
        and verdict.effect is not None
    )


def judge_checks(
    plan: Plan, progress: RolloutProgress, gates: list[Gate], verdicts: list[Verdict], now: datetime
) -> list[GateAction]:
    """``decisions.judge_checks``, with the gains not shown yet counted as above."""
    by_name = {g.name: g for g in gates}
    # A stage with max_bake extends its bake for a gate still inconclusive (the extension's
    # to decide, workflows/rollout/extension.py): the gain is waited for until that is over.
    stage = decisions.current_stage(plan, progress)
    extends = stage.max_bake is not None and progress.clock.extension != "over"
    baked = decisions.baked(plan, progress, now) and not extends
    waiting = set()
    for verdict in verdicts:
        gate = by_name.get(verdict.gate)
        if gate is None or not awaits_gain(gate, verdict):
            continue
        waiting.add(gate.name)
        # judge_checks adds this check to the streak: kept at 0 while the stage bakes,
        # at the limit at once when it is over.
        streak = progress.gates.inconclusive_streaks.get(gate.name, 0)
        limit = gate.inconclusive_limit
        progress.gates.inconclusive_streaks[gate.name] = max(streak, limit - 1) if baked else -1
    actions = decisions.judge_checks(progress, gates, verdicts)
    reasons = {v.gate: v.reason for v in verdicts}
    return [
        a.model_copy(update={"reason": f"{a.gate}: {reasons[a.gate]}, when the bake ended"})
        if a.gate in waiting
        else a
        for a in actions
    ]
