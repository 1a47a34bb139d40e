"""`rollout report`: a rollout's report (timeline, gate plots, baseline, incident), an
experiment's (each variant's effect, its plot, the winner), or with ``--since`` the review
of every rollout in a span (the weekly review)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from client.runs import no_such_rollout, workflow_id
from plans import RolloutError, format_duration
from plans.runtime.messages import EXPERIMENT
from starter.server import connect_client, ui_link


async def cmd_report(args: argparse.Namespace) -> int:
    os.environ["ROLLOUT_DIR"] = args.dir
    if args.since is not None:
        return await _review(args)
    if not args.service:
        raise RolloutError("name the service to report on, or review a span with --since 7d")
    from activities.report.gather import gather
    from activities.report.render import FORMATS, folder_for, write

    client = await connect_client()
    wid = workflow_id(args.service)
    try:
        described = await client.get_workflow_handle(wid, run_id=args.run_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise no_such_rollout(args.service) from None
        raise
    if described.workflow_type == EXPERIMENT.name:
        first = described.raw_description.workflow_execution_info.first_run_id
        return await _experiment(client, args, wid, first or described.run_id)
    try:
        report = await gather(client, wid, args.run_id)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise no_such_rollout(args.service) from None
        raise
    report.ui_url = ui_link(wid)
    root = os.environ.get("ROLLOUT_REPORT_DIR") or _store(Path(args.dir))
    formats = (args.format,) if args.format else FORMATS
    if args.out:
        written = write(report, args.out, formats, setting="--out")
    else:
        written = write(
            report,
            folder_for(root, report),
            formats,
            within=Path(root),
            setting="--out or ROLLOUT_REPORT_DIR",
        )
    if args.json:
        from starter.answers import ReportWritten, dump

        files = {kind: str(path.resolve()) for kind, path in written.items()}
        print(dump(ReportWritten(workflow_id=wid, state=report.state, files=files)))
        return 0
    state = report.state.replace("_", " ")
    print(f"report of {wid} ({state}):")
    for path in written.values():
        print(f"  {path.resolve()}")
    return 0


async def _experiment(client: Client, args: argparse.Namespace, wid: str, first: str) -> int:
    """An experiment's report again: the one it wrote when it ended, from its history (the
    status and each variant's trail its report activity was given); while it runs, from
    its status query, without the plot."""
    from activities.report import experiment
    from activities.storage import owned_folder
    from client.experiments import experiment_status

    if args.format == "html":
        raise RolloutError("an experiment's report is Markdown and JSON: leave out --format html")
    found = await experiment.read_back(client, wid, args.run_id)
    if found is not None:
        status, trail = found.status, found.trail
    else:
        status, trail = await experiment_status(client, args.service), {}
    if args.out:
        written = experiment.write_into(owned_folder(Path(args.out), "--out"), status, trail)
    else:
        root = Path(os.environ.get("ROLLOUT_REPORT_DIR") or _store(Path(args.dir)))
        written = experiment.write(status, root, first, "--out or ROLLOUT_REPORT_DIR", trail)
    if args.format:
        written = {args.format: written[args.format]}
    state = status.state.value
    if args.json:
        from starter.answers import ReportWritten, dump

        files = {kind: str(path.resolve()) for kind, path in written.items()}
        print(dump(ReportWritten(workflow_id=wid, state=state, files=files)))
        return 0
    print(f"report of the experiment {wid} ({state.replace('_', ' ')}):")
    for path in written.values():
        print(f"  {path.resolve()}")
    return 0


def _store(stack: Path) -> str:
    """The dev stack's report store when there is a stack here, else ./rollout-reports."""
    if (stack / "stack.json").exists():
        return str(stack / "reports")
    return "rollout-reports"


async def _review(args: argparse.Namespace) -> int:
    from activities.report.review import parse_since, review

    now = datetime.now(UTC)
    try:
        since = parse_since(args.since, now)
    except ValueError as error:
        raise RolloutError(f"--since {args.since!r}: {error}; write it like 7d or 24h") from None
    client = await connect_client()
    found = await review(client, since, now, args.of_service or args.service)
    if args.format == "json" or args.json:
        print(found.model_dump_json(indent=2))
        return 0
    of = f" of {found.service}" if found.service else ""
    lines = [
        f"Rollouts{of} since {since:%Y-%m-%d %H:%M} UTC: {found.count}"
        f" ({found.promoted} promoted, {found.rolled_back} rolled back,"
        f" {found.running} running, {found.other} other)",
        f"median time to promote: {_span(found.median_promote_s)}",
        f"rollbacks: median time to detect {_span(found.median_detect_s)},"
        f" to restore {_span(found.median_restore_s)}",
    ]
    if found.rollback_reasons:
        lines.append("rolled back because:")
        lines += [f"  {n:>3}  {reason}" for reason, n in found.rollback_reasons.items()]
    if found.failing_gates:
        lines.append("gates that failed most (failed checks):")
        lines += [f"  {n:>3}  {gate}" for gate, n in found.failing_gates.items()]
    if found.rollouts:
        lines.append("rollouts:")
        for r in found.rollouts:
            lines.append(
                f"  {r.started_at:%m-%d %H:%M}  {r.service} {r.version}  {r.state}"
                f"  {_span(r.seconds)}  {r.run_id}"
            )
    for line in lines:
        print(line)
    return 0


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return format_duration(timedelta(seconds=round(seconds)))
