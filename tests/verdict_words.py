"""The first workflow's words for a rollback and the first judge's for a reading, kept for
the tests that pin them down."""

from __future__ import annotations

from datetime import datetime

from activities.judge import Side, judge_gate
from plans import Gate, GateOutcome, Verdict
from plans.runtime.progress import RolloutProgress
from workflows.rollout import decisions


def record_verdicts(
    progress: RolloutProgress, gates: list[Gate], verdicts: list[Verdict]
) -> list[str]:
    """``judge_checks``' rollbacks in words, as the first version of the workflow said them."""
    reasons = []
    for action in decisions.judge_checks(progress, gates, verdicts):
        if action.action != "rollback":
            continue
        verdict = progress.gates.verdicts[action.gate]
        value = "no value" if verdict.value is None else f"{verdict.value:.6g}"
        detail = verdict.reason or f"{value}, wants {verdict.threshold}"
        what = "failed" if action.trigger == "fail" else "was inconclusive"
        reasons.append(
            f"gate {action.gate!r} {what} {action.streak} check(s) in a row"
            f" (limit {action.limit}): {detail}"
        )
    return reasons


def judge(gate: Gate, value: float | None, reason: str, query: str, at: datetime | None) -> Verdict:
    """One reading of a threshold gate; on a pass the given ``reason`` is kept as it is."""
    verdict = judge_gate(gate, Side(value=value, reason=reason), query=query, at=at)
    if verdict.outcome is GateOutcome.PASS:
        return verdict.model_copy(update={"reason": reason})
    return verdict
