"""An experiment's pure decisions: which way is better, who won, who is out, the shares.

No I/O and no clock: the workflow hands in what it knows and acts on the answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from plans import Gate, GateOutcome, Verdict
from plans.experiment import ExperimentPlan
from plans.gates import SequentialGate
from plans.runtime.experiment import EffectPoint, ExperimentProgress, ExperimentState


def lower_is_better(gate: SequentialGate) -> bool:
    """Which way the primary metric gets better: the gate's ``better`` when it says, else
    the opposite of the change it calls a regression (``decrease``: higher is better)."""
    better = getattr(gate, "better", None)
    if better in ("lower", "higher"):
        return bool(better == "lower")
    return gate.direction != "decrease"


def split_confidence(gate: SequentialGate, challengers: int) -> SequentialGate:
    """The primary gate at the confidence each comparison gets (Bonferroni): with k variants
    against the control, each is judged at 1 - (1 - confidence) / k, so the chance of naming
    any wrong winner stays within 1 - confidence."""
    if challengers <= 1:
        return gate
    confidence = 1 - (1 - gate.confidence) / challengers
    return gate.model_copy(update={"confidence": confidence})


def shown_better(verdict: Verdict | None, lower: bool, improve: bool = False) -> bool:
    """The variant is shown better than the control: a gate with ``direction: improve``
    passes only once the gain it asks for (``by``) is shown; any other primary gate when the
    interval of the variant's metric over the control's lies wholly on the better side."""
    if verdict is None or verdict.outcome == GateOutcome.INCONCLUSIVE:
        return False
    if improve:
        return verdict.outcome == GateOutcome.PASS
    if verdict.effect_low is None or verdict.effect_high is None:
        return False
    return verdict.effect_high < 1.0 if lower else verdict.effect_low > 1.0


def winner_of(primary: dict[str, Verdict], lower: bool, improve: bool = False) -> str:
    """Of the variants shown better than the control, the one with the best effect; '' if none."""
    better = [
        (v.effect if lower else -v.effect, name)
        for name, v in primary.items()
        if shown_better(v, lower, improve) and v.effect is not None
    ]
    return min(better)[1] if better else ""


def failing_guardrails(
    verdicts: list[Verdict], guardrails: list[Gate], streaks: dict[str, int]
) -> list[str]:
    """Count failures in a row per guardrail (``streaks``, updated); the reasons of those that
    reached their ``failure_limit``. A dry-run guardrail is recorded, never acted on."""
    return [
        f"guardrail {gate.name} failed: {verdict.reason or verdict.explain()}"
        for gate, verdict in _in_a_row(verdicts, guardrails, streaks, GateOutcome.FAIL)
    ]


def starved_guardrails(
    verdicts: list[Verdict], guardrails: list[Gate], streaks: dict[str, int]
) -> list[str]:
    """Count inconclusive checks in a row per guardrail (``streaks``, updated); the reasons
    of those that reached their ``inconclusive_limit``, whose streaks start again. A variant
    no guardrail can judge is not one to roll forward: the experiment pauses, as a rollout's
    stage does. A dry-run guardrail is recorded, never acted on."""
    return [
        f"guardrail {gate.name} inconclusive {gate.inconclusive_limit} check(s) in a row:"
        f" {verdict.reason or verdict.explain()}"
        for gate, verdict in _in_a_row(verdicts, guardrails, streaks, GateOutcome.INCONCLUSIVE)
    ]


def _in_a_row(
    verdicts: list[Verdict], guardrails: list[Gate], streaks: dict[str, int], outcome: GateOutcome
) -> list[tuple[Gate, Verdict]]:
    """The guardrails (not dry-run) whose verdicts reached their limit of ``outcome`` in a
    row: ``failure_limit`` for FAIL, ``inconclusive_limit`` (its streak starts again) else."""
    by_name = {g.name: g for g in guardrails}
    reached = []
    for verdict in verdicts:
        gate = by_name.get(verdict.gate)
        if gate is None:
            continue
        if verdict.outcome != outcome:
            streaks[gate.name] = 0
            continue
        streaks[gate.name] = streaks.get(gate.name, 0) + 1
        fail = outcome == GateOutcome.FAIL
        if streaks[gate.name] >= (gate.failure_limit if fail else gate.inconclusive_limit):
            if not fail:
                streaks[gate.name] = 0
            if not gate.dry_run:
                reached.append((gate, verdict))
    return reached


def without(shares: dict[str, int], variant: str, control: str) -> dict[str, int]:
    """The shares with ``variant`` taken out: its share goes to the control."""
    moved = dict(shares)
    moved[control] = moved.get(control, 0) + moved.get(variant, 0)
    moved[variant] = 0
    return moved


def only(variant: str, names: list[str]) -> dict[str, int]:
    """Every variant named, ``variant`` at 100% and the others at 0."""
    return {name: 100 if name == variant else 0 for name in names}


def active(plan: ExperimentPlan, progress: ExperimentProgress) -> list[str]:
    """The variants still judged against the control: not taken out."""
    return [v for v in plan.experiment.challengers if v not in progress.out]


def elapsed(progress: ExperimentProgress, now: datetime) -> timedelta:
    """How long the experiment has run, paused time left out."""
    if progress.started_at is None:
        return timedelta(0)
    paused = progress.paused_for_s
    if progress.paused_since is not None:
        paused += (now - progress.paused_since).total_seconds()
    return max(now - progress.started_at - timedelta(seconds=paused), timedelta(0))


def refusal(plan: ExperimentPlan, progress: ExperimentProgress, kind: str, variant: str) -> str:
    """Why a command is refused now, or ''."""
    if progress.state.final:
        return f"{kind}: the experiment has ended ({progress.state.value})"
    if progress.stop_asked:
        return f"{kind}: the experiment is being stopped: {progress.stop_asked}"
    if progress.state == ExperimentState.RESTORING:
        return f"{kind}: the experiment is being stopped: {progress.reason}"
    if progress.state == ExperimentState.ROLLING_FORWARD and kind not in ("rollback", "abort"):
        return f"{kind}: {progress.winner!r} is being rolled forward"
    if kind == "pause" and progress.paused:
        return "pause: the experiment is paused already"
    if kind == "resume" and not progress.paused:
        return "resume: the experiment is not paused"
    if kind == "promote":
        names = [v.name for v in plan.experiment.variants]
        if not variant:
            return f"promote: name the variant to roll forward with --variant ({', '.join(names)})"
        if variant not in names:
            return f"promote: {variant!r} is none of the variants ({', '.join(names)})"
        if variant in progress.out:
            return f"promote: {variant!r} was taken out: {progress.out[variant]}"
        if progress.winner:
            return f"promote: {progress.winner!r} is being rolled forward already"
    if kind not in ("pause", "resume", "promote", "rollback", "abort"):
        return f"{kind}: an experiment takes pause, resume, promote --variant and rollback"
    return ""


TRAIL_POINTS = 400  # the most points a variant's trail keeps (the report's plot)


def trace(progress: ExperimentProgress, variant: str, verdict: Verdict, at: datetime) -> None:
    """Add the primary verdict's effect to the variant's trail. A trail at ``TRAIL_POINTS``
    keeps every other point, so it spans the whole experiment at a coarser step and the
    progress carried into the next run stays small."""
    if verdict.effect is None or verdict.effect_low is None or verdict.effect_high is None:
        return
    trail = progress.trail.setdefault(variant, [])
    if len(trail) >= TRAIL_POINTS:
        del trail[1::2]
    trail.append(
        EffectPoint(at=at, effect=verdict.effect, low=verdict.effect_low, high=verdict.effect_high)
    )
