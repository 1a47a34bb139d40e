"""A rollout's report gathered from where the facts are: its Temporal history (every run of
it, across continue-as-new), its status query when a worker answers, and Prometheus ranges
over its time span. Nothing is kept anywhere else, so the report cannot disagree with them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import DataConverter

from activities.report import series
from activities.report.model import CheckMark, Facts, Report, Shift, StageSpan, TimelineEntry
from client import calls, history
from plans import Plan, RolloutStatus, TrafficSplit, Verdict
from plans.governance.approvals import who
from plans.runtime.checks import Observation
from plans.runtime.inputs import RolloutInput
from plans.runtime.messages import CHECKS, LOOK, ROLLOUT_STATUS, SHIFT_TRAFFIC
from plans.runtime.state import CommandRecord, ShiftRequest

QUERY_TIMEOUT = timedelta(seconds=3)


class ReportUnavailable(Exception):
    """The run's history cannot be read, or holds no rollout."""


async def gather(
    client: Client,
    workflow_id: str,
    run_id: str | None = None,
    status: RolloutStatus | None = None,
    prometheus: bool = True,
) -> Report:
    """The report of ``workflow_id``'s run ``run_id`` (its latest when None), running or ended.

    ``status`` is the workflow's own answer when the caller has it (the end-of-rollout
    activity); otherwise the status query is asked, and the history alone does without it.
    """
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id, run_id=run_id)
    facts = await read_runs(client, handle)
    if facts.plan is None or facts.started_at is None:
        raise ReportUnavailable(f"workflow {workflow_id} holds no rollout plan in its history")
    if status is None:
        status = await _status(handle)
    return await build(facts, status, workflow_id, prometheus=prometheus)


async def build(
    facts: Facts, status: RolloutStatus | None, workflow_id: str, prometheus: bool = True
) -> Report:
    """The report from the facts read; Prometheus is asked for ranges when ``prometheus``."""
    plan = facts.plan
    assert plan is not None and facts.started_at is not None
    state = facts.end_state or (status.state.value if status else "running")
    reason = facts.end_reason or (status.reason if status else "")
    ended = status is not None and status.state.final and bool(status.events)
    # A run that has not ended yet is drawn up to now.
    end = facts.ended_at or (status.events[-1].at if status and ended else None)
    report = Report(
        service=plan.service,
        version=plan.version,
        workflow_id=workflow_id,
        run_ids=facts.run_ids,
        stable=plan.stable,
        canary=plan.canary,
        state=state,
        reason=reason,
        started_at=facts.started_at,
        ended_at=end,
        stages=stages_of(plan, facts.shifts, end),
        timeline=timeline_of(facts, status),
    )
    span_end = end or datetime.now(UTC)
    report.gates = series.gates(plan, facts.checks)
    if prometheus:
        for gate in report.gates:
            await series.fill_ranges(plan, gate, facts.started_at, span_end)
    for gate in report.gates:
        series.fill_limit(plan, gate, facts.started_at, span_end)
    report.baseline = series.baseline(plan, report.gates)
    if state in ("rolled_back", "aborted"):
        report.incident = series.incident(plan, report, facts)
    return report


async def read_runs(client: Client, handle: WorkflowHandle[Any, Any]) -> Facts:
    """Every run of the rollout up to ``handle``'s, oldest first, read into one Facts."""
    histories = []
    run_id: str | None = handle.run_id
    for _ in range(1000):  # a chain of continue-as-new, walked back from the newest run
        events = await history.run_events(client, handle.id, run_id or "")
        if not events:
            break
        histories.append((run_id, events))
        first = events[0].workflow_execution_started_event_attributes
        run_id = first.continued_execution_run_id or None
        if run_id is None:
            break
    return await read_histories(client.data_converter, list(reversed(histories)))


async def read_histories(
    converter: DataConverter, histories: list[tuple[str | None, list[HistoryEvent]]]
) -> Facts:
    """The facts of a rollout's runs, each given as (run id, events), oldest run first."""
    facts = Facts()
    for run, events in histories:
        first = events[0].workflow_execution_started_event_attributes if events else None
        facts.run_ids.append(run or (first.original_execution_run_id if first else ""))
        await _read(converter, events, facts)
    return facts


async def _read(converter: DataConverter, events: list[HistoryEvent], facts: Facts) -> None:
    scheduled: dict[int, Shift] = {}
    for event in events:
        kind, at = event.event_type, event.event_time.ToDatetime(tzinfo=UTC)
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            if facts.plan is None:
                facts.plan = await _plan(converter, event)
                facts.started_at = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == SHIFT_TRAFFIC:
                request = await _decoded(converter, attributes.input.payloads, ShiftRequest)
                if isinstance(request, ShiftRequest):
                    summary = await _summary(converter, event)
                    shift = Shift(at=at, weight=request.split.canary_weight, summary=summary)
                    scheduled[event.event_id] = shift
                    facts.shifts.append(shift)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            shift_done = scheduled.get(done.scheduled_event_id)
            if shift_done is not None:
                split = await _decoded(converter, done.result.payloads, TrafficSplit)
                shift_done.done_at = at
                if isinstance(split, TrafficSplit):
                    shift_done.read_back = split.canary_weight
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            verdicts = await _verdicts(converter, event)
            if verdicts:
                facts.checks.append((at, verdicts))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes
            by = f" from {signal.identity}" if signal.identity else ""
            facts.signals.append(
                TimelineEntry(at=at, kind="signal", text=f"{signal.signal_name}{by}")
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            facts.ended_at = at
            result = await _decoded(
                converter, event.workflow_execution_completed_event_attributes.result.payloads, dict
            )
            if isinstance(result, dict):
                facts.end_state = str(result.get("state", "completed"))
                facts.end_reason = str(result.get("reason", ""))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            facts.ended_at = at
            failure = event.workflow_execution_failed_event_attributes.failure
            rolled = failure.application_failure_info.type == "RolledBack"
            facts.end_state = "rolled_back" if rolled else "failed"
            facts.end_reason = failure.message.removeprefix("rolled back: ")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
            facts.ended_at, facts.end_state = at, "cancelled"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            facts.ended_at, facts.end_state = at, "terminated"
            facts.end_reason = event.workflow_execution_terminated_event_attributes.reason


async def _plan(converter: DataConverter, event: HistoryEvent) -> Plan | None:
    payloads = event.workflow_execution_started_event_attributes.input.payloads
    data = await _decoded(converter, payloads[:1], dict)
    if not isinstance(data, dict):
        return None
    try:
        return RolloutInput.model_validate(data).plan
    except ValueError:
        try:
            return Plan.model_validate(data)
        except ValueError:
            return None


async def _verdicts(converter: DataConverter, event: HistoryEvent) -> list[Verdict]:
    """A check's verdicts, from the marker of its local activity, if this is one."""
    details = event.marker_recorded_event_attributes.details
    try:
        data = json.loads(details["data"].payloads[0].data)
        kind = data.get("activity_type")
        if kind not in CHECKS or "result" not in details:
            return []
        shape = Observation if kind == LOOK else list[Verdict]
        decoded = await converter.decode(list(details["result"].payloads), [shape])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return []
    found = decoded[0] if decoded else None
    if isinstance(found, Observation):
        return found.verdicts
    return found if isinstance(found, list) else []


async def _decoded(converter: DataConverter, payloads: Any, shape: Any) -> Any:
    try:
        decoded = await converter.decode(list(payloads), [shape])
    except (ValueError, TypeError, IndexError):
        return None
    return decoded[0] if decoded else None


async def _summary(converter: DataConverter, event: HistoryEvent) -> str:
    if not (event.HasField("user_metadata") and event.user_metadata.HasField("summary")):
        return ""
    text = await _decoded(converter, [event.user_metadata.summary], str)
    return str(text or "")


async def _status(handle: WorkflowHandle[Any, Any]) -> RolloutStatus | None:
    """The workflow's own account (audit trail, commands), when a worker answers."""
    try:
        answer = await calls.ask(handle, ROLLOUT_STATUS, rpc_timeout=QUERY_TIMEOUT)
    except Exception:
        return None
    return answer if isinstance(answer, RolloutStatus) else None


def stages_of(plan: Plan, shifts: list[Shift], end: datetime | None) -> list[StageSpan]:
    """The stages as they ran: one span per shift, until the next shift or the end."""
    spans: list[StageSpan] = []
    names = {s.weight: s.name for s in plan.stages}
    for shift in shifts:
        name = _stage_name(shift.summary) or names.get(shift.weight, f"{shift.weight}%")
        if (
            spans
            and spans[-1].weight == shift.weight
            and (spans[-1].name == name or shift.summary.startswith("re-assert"))
        ):
            # A drift repaired or a restore asserted again: the same stage goes on.
            spans[-1].read_back = shift.read_back
            continue
        if spans and spans[-1].end is None:
            spans[-1].end = shift.at
        spans.append(
            StageSpan(name=name, weight=shift.weight, start=shift.at, read_back=shift.read_back)
        )
    if spans and spans[-1].end is None:
        spans[-1].end = end
    return spans


def _stage_name(summary: str) -> str:
    if "stage '" in summary:
        return summary.split("stage '", 1)[1].split("'", 1)[0]
    if summary.startswith("promote"):
        return "promotion"
    if "restore" in summary or "stable" in summary.split(":")[0]:
        return "rollback"
    return ""


def timeline_of(facts: Facts, status: RolloutStatus | None) -> list[TimelineEntry]:
    """Shifts (set and read back), the workflow's audit trail and commands, by time."""
    entries: list[TimelineEntry] = []
    for shift in facts.shifts:
        what = shift.summary or f"shift canary to {shift.weight}%"
        entries.append(TimelineEntry(at=shift.at, kind="shift", text=f"{what}: weight set"))
        if shift.done_at is not None:
            back = "unreadable" if shift.read_back is None else f"canary {shift.read_back}%"
            entries.append(
                TimelineEntry(at=shift.done_at, kind="read back", text=f"router shows {back}")
            )
    if status is not None:
        entries += [TimelineEntry(at=e.at, kind=e.kind, text=e.text) for e in status.events]
        entries += [_command(c) for c in status.commands]
    else:
        entries += facts.signals
        if facts.ended_at is not None:
            text = facts.end_state + (f": {facts.end_reason}" if facts.end_reason else "")
            entries.append(TimelineEntry(at=facts.ended_at, kind="end", text=text))
    return sorted(entries, key=lambda e: e.at)


def _command(c: CommandRecord) -> TimelineEntry:
    fate = "accepted" if c.accepted else f"refused: {c.note}"
    why = f" because {c.reason!r}" if c.reason else ""
    sender = who(c.by, c.verified)
    return TimelineEntry(at=c.at, kind="command", text=f"{c.kind} by {sender}{why} ({fate})")


def report_dir() -> str:
    """Where the worker keeps reports: ``ROLLOUT_REPORT_DIR``, else ``./rollout-reports``."""
    return os.environ.get("ROLLOUT_REPORT_DIR") or os.path.abspath("rollout-reports")


__all__ = ["CheckMark", "Facts", "ReportUnavailable", "build", "gather", "read_runs"]
