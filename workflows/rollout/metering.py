"""The product's own metrics, recorded from a rollout's workflow code.

Through ``workflow.metric_meter()``: the SDK records nothing while a run replays, so a worker
that takes a run over after a crash counts only what happens from then on, never twice. The
worker serves them on its Prometheus endpoint (``ROLLOUT_WORKER_METRICS``) beside the SDK's
own, with the labels the SDK adds (namespace, task_queue, workflow_type). Counters are
summed across workers; the gauges are each worker's last look at the runs it holds.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from plans import CommandRecord, Plan, RolloutState, Verdict
    from plans.runtime.metric_names import (
        CANARY_WEIGHT,
        CHECKS,
        COMMANDS,
        DRIFT,
        ENDED,
        GATE_VALUE,
        RESTORE_FAILURES,
        RESTORE_SECONDS,
        ROLLBACKS,
        STARTED,
        VERDICTS,
    )
    from plans.runtime.progress import RolloutProgress


def _count(name: str, description: str, **labels: str) -> None:
    workflow.metric_meter().create_counter(name, description).add(1, labels)


def started(plan: Plan) -> None:
    """A rollout began (its first run, before its first shift)."""
    _count(STARTED, "Rollouts started", service=plan.service, strategy=plan.strategy)


def checked(plan: Plan, p: RolloutProgress, verdicts: list[Verdict]) -> None:
    """A check ran: counted by the state it ran in, each gate's verdict and numbers kept."""
    service = plan.service
    _count(CHECKS, "Checks of the router and the gates", service=service, state=p.state.value)
    meter = workflow.metric_meter()
    meter.create_gauge(CANARY_WEIGHT, "Canary's traffic weight, percent").set(
        p.canary_weight, {"service": service}
    )
    values = meter.create_gauge_float(GATE_VALUE, "A gate's last measured value, by side")
    for verdict in verdicts:
        _count(
            VERDICTS,
            "Gate verdicts",
            service=service,
            gate=verdict.gate,
            outcome=verdict.outcome.value,
        )
        for side, value in (("canary", verdict.canary), ("stable", verdict.stable)):
            if value is not None:
                values.set(value, {"service": service, "gate": verdict.gate, "side": side})


def audited(plan: Plan, p: RolloutProgress, kind: str) -> None:
    """What an audit event means in numbers: a rollback begun, drift, the end and its outcome."""
    service = plan.service
    if kind == "rollback":
        _count(ROLLBACKS, "Rollbacks begun", service=service)
    elif kind == "drift":
        _count(DRIFT, "Router found routing something else than the rollout set", service=service)
    elif kind == "end":
        _count(ENDED, "Rollouts ended, by outcome", service=service, outcome=p.state.value)
        workflow.metric_meter().create_gauge(CANARY_WEIGHT, "Canary's traffic weight, percent").set(
            p.canary_weight, {"service": service}
        )
        began = next((e.at for e in reversed(p.events) if e.kind == "rollback"), None)
        if began is not None and p.state in (RolloutState.ROLLED_BACK, RolloutState.ABORTED):
            took = (workflow.now() - began).total_seconds()
            workflow.metric_meter().create_histogram_float(
                RESTORE_SECONDS, "From a rollback's start to stable restored", "s"
            ).record(took, {"service": service})


def restore_failing(plan: Plan) -> None:
    """A restore gave up its attempts for now (it goes on retrying)."""
    _count(RESTORE_FAILURES, "Restores that failed their attempts", service=plan.service)


def command(plan: Plan, record: CommandRecord) -> None:
    """An operator command arrived: its kind and whether it was taken."""
    fate = "accepted" if record.accepted else "refused"
    _count(COMMANDS, "Operator commands", service=plan.service, kind=record.kind, fate=fate)
