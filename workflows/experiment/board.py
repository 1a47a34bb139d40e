"""What people see of an experiment: the status query's answer, the UI's details, the result.

The Temporal UI shows the run's current details (each variant's share and effect, the
winner) and the Rollout* search attributes as a rollout sets them: RolloutStage is
``experiment``, RolloutWeight the share of the variants other than the control.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from plans.experiment import ExperimentPlan
from plans.runtime.experiment import (
    ExperimentProgress,
    ExperimentResult,
    ExperimentState,
    ExperimentStatus,
    VariantStatus,
)
from plans.runtime.visibility import SERVICE, STAGE, STATE, VERSION, WEIGHT
from workflows.experiment import decisions


def variants_of(plan: ExperimentPlan, p: ExperimentProgress) -> list[VariantStatus]:
    """Each variant: share now, last primary verdict and guardrails, shown better or not."""
    ex = plan.experiment
    primary = plan.primary
    lower = decisions.lower_is_better(primary)
    found = []
    for v in ex.variants:
        verdicts = {x.gate: x for x in p.verdicts.get(v.name, [])}
        first = verdicts.pop(primary.name, None)
        found.append(
            VariantStatus(
                name=v.name,
                control=v.name == ex.control,
                share=p.shares.get(v.name, v.share if not p.shifted else 0),
                planned_share=v.share,
                out=p.out.get(v.name, ""),
                better=decisions.shown_better(first, lower, primary.direction == "improve"),
                primary=first,
                guardrails=verdicts,
                failure_streaks=dict(p.streaks.get(v.name, {})),
            )
        )
    return found


def status_of(plan: ExperimentPlan, p: ExperimentProgress, now: datetime) -> ExperimentStatus:
    ex = plan.experiment
    primary = decisions.split_confidence(plan.primary, len(ex.challengers))
    return ExperimentStatus(
        service=plan.service,
        state=p.state,
        control=ex.control,
        primary=primary.name,
        confidence=primary.confidence,
        better="lower" if decisions.lower_is_better(primary) else "higher",
        variants=variants_of(plan, p),
        winner=p.winner,
        reason=p.reason,
        checks=p.checks,
        started_at=p.started_at,
        elapsed_s=decisions.elapsed(p, p.ended_at or now).total_seconds(),
        max_duration_s=ex.max_duration.total_seconds(),
        paused=p.paused,
        commands=p.commands,
        events=p.events,
        as_of=now,
    )


def sentence(plan: ExperimentPlan, p: ExperimentProgress) -> str:
    """The run's current details: the state, each variant's share and effect, the winner."""
    parts = []
    for v in variants_of(plan, p):
        text = f"{v.name} {v.share}%"
        if v.control:
            text += " (control)"
        elif v.out:
            text += " (out)"
        elif effect := v.effect_text():
            text += f" {plan.primary.name} {effect}" + (" better" if v.better else "")
        parts.append(text)
    state = p.state.value.replace("_", " ")
    text = f"{plan.service} experiment: {state}; " + ", ".join(parts)
    if p.winner:
        text += f"; winner {p.winner}"
    if p.reason and p.state.final:
        text += f". Reason: {p.reason}"
    return text


def result_of(plan: ExperimentPlan, p: ExperimentProgress) -> ExperimentResult:
    return ExperimentResult(
        service=plan.service, state=p.state, winner=p.winner, shares=p.shares, reason=p.reason
    )


def rolled_back(plan: ExperimentPlan, p: ExperimentProgress) -> ApplicationError:
    """The failure a stopped experiment ends with (Failed in the UI), the result as details."""
    return ApplicationError(
        f"rolled back: {p.reason}", result_of(plan, p), type="RolledBack", non_retryable=True
    )


class Board:
    """The one writer of the experiment's state; publishes details and search attributes."""

    def __init__(self, plan: ExperimentPlan, progress: ExperimentProgress, visibility: bool):
        self._plan, self._progress, self._visibility = plan, progress, visibility
        self._published: tuple[Any, ...] = ()

    def show(self, state: ExperimentState | None = None) -> None:
        p, plan = self._progress, self._plan
        if state is not None:
            p.state = state
            if state.final and p.ended_at is None:
                p.ended_at = workflow.now()
        text = sentence(plan, p)
        if text == (self._published[0] if self._published else None):
            return
        self._published = (text,)
        workflow.set_current_details(text)
        if self._visibility:
            control = p.shares.get(plan.experiment.control, 0)
            workflow.upsert_search_attributes(
                [
                    SERVICE.value_set(plan.service),
                    VERSION.value_set(plan.version),
                    STAGE.value_set("experiment"),
                    WEIGHT.value_set(100 - control if p.shares else 0),
                    STATE.value_set(p.state.value),
                ]
            )
