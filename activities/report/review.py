"""The weekly review across rollouts: how many, how they ended, how fast, which gates failed.

Read from Temporal's visibility (which runs) and their histories (what happened), the same
facts each run's report is built from: no private store that could disagree with them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus

from activities.report.gather import build, read_runs
from activities.report.model import Report
from client import runs
from plans.runtime.visibility import ROLLOUT_WORKFLOW, rollout_workflow_id

MAX_RUNS = 500


class RolloutLine(BaseModel):
    """One rollout in the review."""

    workflow_id: str
    run_id: str
    service: str
    version: str
    state: str
    reason: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    seconds: float | None = Field(default=None, description="from start to end")
    detect_s: float | None = Field(
        default=None, description="rollbacks: from the stage's shift to its first failing check"
    )
    restore_s: float | None = Field(
        default=None, description="rollbacks: from the first failing check to stable restored"
    )
    failed_gates: list[str] = Field(default_factory=list)


class Review(BaseModel):
    """Rollouts started since ``since``, and what they add up to."""

    since: datetime
    until: datetime
    service: str | None = None
    rollouts: list[RolloutLine] = Field(default_factory=list)
    count: int = 0
    promoted: int = 0
    rolled_back: int = 0
    running: int = 0
    other: int = 0
    rollback_reasons: dict[str, int] = Field(default_factory=dict)
    median_promote_s: float | None = None
    median_detect_s: float | None = None
    median_restore_s: float | None = None
    failing_gates: dict[str, int] = Field(
        default_factory=dict, description="gate: failed checks, most first"
    )


async def review(client: Client, since: datetime, until: datetime, service: str | None) -> Review:
    """The review of the rollouts started in [since, until], of ``service`` or all."""
    query = f"WorkflowType = '{ROLLOUT_WORKFLOW}' AND StartTime >= '{since.isoformat()}'"
    if service is not None:
        query += f" AND WorkflowId = '{rollout_workflow_id(service)}'"
    lines: list[RolloutLine] = []
    failing: Counter[str] = Counter()
    async for execution in runs.executions(client, query, limit=MAX_RUNS):
        if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue  # its chain is read from the run that continues it
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        facts = await read_runs(client, handle)
        if facts.plan is None or facts.started_at is None or facts.started_at < since:
            continue
        report = await build(facts, None, execution.id, prometheus=False)
        if execution.status == WorkflowExecutionStatus.RUNNING:
            report.state = "running"
        for series in report.gates:
            failing[series.gate] += sum(1 for c in series.checks if c.outcome == "fail")
        lines.append(line_of(report))
    return summarize(lines, failing, since, until, service)


def line_of(report: Report) -> RolloutLine:
    line = RolloutLine(
        workflow_id=report.workflow_id,
        run_id=report.run_ids[-1] if report.run_ids else "",
        service=report.service,
        version=report.version,
        state=report.state,
        reason=report.reason,
        started_at=report.started_at,
        ended_at=report.ended_at,
        failed_gates=[s.gate for s in report.gates if any(c.outcome == "fail" for c in s.checks)],
    )
    if report.ended_at is not None and report.state != "running":
        line.seconds = (report.ended_at - report.started_at).total_seconds()
    incident = report.incident
    if incident is not None and incident.first_failing_at is not None:
        line.restore_s = incident.seconds_to_restore
        exposed = [s.start for s in report.stages if s.start <= incident.first_failing_at]
        if exposed:
            line.detect_s = (incident.first_failing_at - max(exposed)).total_seconds()
    return line


def summarize(
    lines: list[RolloutLine],
    failing: Counter[str],
    since: datetime,
    until: datetime,
    service: str | None,
) -> Review:
    lines.sort(key=lambda line: line.started_at)
    rolled = [line for line in lines if line.state == "rolled_back"]
    promoted = [line for line in lines if line.state == "promoted"]
    running = [line for line in lines if line.state == "running"]
    return Review(
        since=since,
        until=until,
        service=service,
        rollouts=lines,
        count=len(lines),
        promoted=len(promoted),
        rolled_back=len(rolled),
        running=len(running),
        other=len(lines) - len(rolled) - len(promoted) - len(running),
        rollback_reasons=dict(Counter(reason_kind(line.reason) for line in rolled).most_common()),
        median_promote_s=_median([line.seconds for line in promoted]),
        median_detect_s=_median([line.detect_s for line in rolled]),
        median_restore_s=_median([line.restore_s for line in rolled]),
        failing_gates={gate: n for gate, n in failing.most_common() if n},
    )


def reason_kind(reason: str) -> str:
    """A rollback's reason as a kind to count: the gates that failed, or what asked for it."""
    gates = [
        part.split(":", 1)[0].strip()
        for part in reason.split("; ")
        if "check(s) in a row" in part or "in a row" in part
    ]
    if gates:
        return "gate " + ", ".join(sorted(set(gates)))
    if "cancel" in reason:
        return "cancelled"
    if "failed" in reason:
        return reason.split(":", 1)[0]
    return reason[:60] or "no reason given"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``, ``24h``, ``90m`` back from ``now``."""
    from plans import parse_duration

    return now - parse_duration(text)


__all__ = ["Review", "RolloutLine", "parse_since", "review"]
