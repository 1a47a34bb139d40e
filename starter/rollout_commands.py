"""`rollout` on plans and rollouts: validate, start, status, the operator commands, list, setup."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

from rich.markup import escape
from temporalio.client import Client
from temporalio.service import RPCError

from client import reading, releases, runs, signing, starting, steering
from client.connection import task_queue
from client.records import TemporalRecords
from client.runs import NoSuchRollout, workflow_id
from plans import CommandKind, OperatorCommand, Plan, RolloutError, format_duration, visibility
from plans.approvals import who
from plans.release_plan import ReleasePlan, load_any
from plans.visibility import ROLLOUT_WORKFLOW, service_of
from plans.windows import Windows
from starter import release_commands, render, traffic
from starter.exits import EXIT_ERROR, EXIT_FROM_RECORDS, exit_code, records_exit_code
from starter.render import err, out
from starter.server import connect_client, ui_link

CLAIM_WAIT_S = 15.0


# -- plans -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    plan = load_any(args.plan)
    if isinstance(plan, ReleasePlan):
        return release_commands.validate(args.plan, plan)
    out.print(
        f"[green]ok[/]: {escape(args.plan)} is a valid plan for {plan.service} ({plan.workflow_id})"
    )
    for index, stage in enumerate(plan.stages, 1):
        gates = ", ".join(g.name for g in plan.gates_for(stage)) or "no gates"
        approval = ", then approval" if stage.approval else ""
        matched = f" and every request with {stage.match.describe()}" if stage.match else ""
        out.print(
            f"  {index}. {stage.name}: {stage.weight}%{escape(matched)} for"
            f" {format_duration(stage.bake)},"
            f" checks every {format_duration(stage.check_every)} ({gates}){approval}"
        )
    if plan.windows is not None:
        out.print(f"  increases: {escape(windows_line(plan.windows))}")
    return 0


def windows_line(windows: Windows) -> str:
    """The plan's windows and their next opening, as `validate` prints them."""
    allow = "; ".join(w.describe() for w in windows.allow) or "any time"
    deny = "; ".join(w.describe() for w in windows.deny)
    opens = windows.next_opening(datetime.now(UTC))
    when = f", next opening {opens:%a %Y-%m-%d %H:%M} UTC" if opens else ""
    return f"inside {allow}" + (f", never inside {deny}" if deny else "") + when


def load(path: str) -> Plan:
    from plans import load_plan

    return load_plan(path)


# -- rollouts --------------------------------------------------------------------------------


async def cmd_start(args: argparse.Namespace) -> int:
    plan = load_any(args.plan)
    if isinstance(plan, ReleasePlan):
        return await release_commands.start(args, plan)
    client = await connect_client()
    handle = await starting.start_rollout(client, plan, args.task_queue or task_queue())
    # Refused here, not later, when another running rollout moves the same target.
    owned = await starting.await_target(client, plan, handle, timeout=CLAIM_WAIT_S)
    out.print(f"started {plan.workflow_id} (run {handle.result_run_id})")
    out.print(f"Temporal UI: {ui_link(plan.workflow_id)}")
    if plan.approvers and (note := await signing.claim_start(handle, args.key)):
        err.print(note)
    if not owned:
        err.print(
            f"note: no worker has picked the rollout up within {CLAIM_WAIT_S:g}s; it claims"
            f" {plan.router.target_key()} (or is refused) once one does:"
            f" `rollout status {plan.service}` shows which"
        )
    if not await starting.search_attributes_registered(client):
        err.print(
            "note: this cluster lacks the Rollout* search attributes, so the run cannot be"
            " filtered by state in the UI or `rollout list`; register them with `rollout setup`"
        )
    if not args.follow:
        return 0
    return await _follow(client, plan.service)


async def _follow(client: Client, service: str) -> int:
    last = None
    async for status in reading.follow(client, service):
        line = render.progress_line(status)
        if line != last:
            out.print(line, soft_wrap=True)
            last = line
        if status.state.final:
            return exit_code(status.state)
    return EXIT_ERROR


async def cmd_status(args: argparse.Namespace) -> int:
    client = await connect_client()
    if getattr(args, "target", None):
        args.service = f"{args.service}-{args.target}"  # the target's own rollout
    elif await releases.shows_release(client, args.service):
        return await release_commands.status(args, client)
    answer = await traffic.read_status(client, args.service)
    records = isinstance(answer, TemporalRecords)
    if args.json:
        print(json.dumps(render.as_json(answer), indent=2))
        return EXIT_FROM_RECORDS if records else 0
    if not args.watch:
        out.print(render.answer_view(answer))
        out.print(f"Temporal UI: {ui_link(workflow_id(args.service))}")
        return EXIT_FROM_RECORDS if records else 0
    from rich.live import Live

    # A worker outage, or Temporal out of reach for a while, does not end the watch.
    note, away = "", None
    with Live(render.watch_view(answer, note), console=out, refresh_per_second=4) as live:
        while True:
            if isinstance(answer, TemporalRecords):
                away = away or answer.as_of
                note = f"no worker answers since {away:%H:%M:%S} UTC; still watching"
                if answer.closed:
                    live.update(render.watch_view(answer, ""))
                    return records_exit_code(answer)
            else:
                if away is not None:
                    note = (
                        f"worker back at {answer.as_of or away:%H:%M:%S} UTC (none answered"
                        f" from {away:%H:%M:%S}): the status is the workflow's own again"
                    )
                    away = None
                if answer.state.final:
                    live.update(render.watch_view(answer, note))
                    return exit_code(answer.state)
            live.update(render.watch_view(answer, note))
            await asyncio.sleep(1)
            try:
                answer = await traffic.read_status(client, args.service)
            except NoSuchRollout:
                raise
            except (RolloutError, RPCError) as error:
                message = error.message if isinstance(error, RPCError) else str(error)
                note = f"cannot read the status now ({message}); still watching"


async def cmd_command(args: argparse.Namespace) -> int:
    command = OperatorCommand(kind=CommandKind(args.command), by=args.by, reason=args.reason)
    client = await connect_client()
    if await releases.release_exists(client, args.service, running_only=True):
        return await release_commands.command(args, client, command)
    if getattr(args, "target", None):
        raise release_commands.no_release_for_target(args.service, args.target)
    record = await steering.send_command(client, args.service, command, key=args.key)
    sender = who(record.by, record.verified) if record.verified else record.by
    sender += f"; {record.note}" if record.note else ""
    out.print(f"[green]{record.kind}[/] taken for {args.service} (by {escape(sender)})")
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    client = await connect_client()
    query = args.query or f'WorkflowType="{ROLLOUT_WORKFLOW}" AND ExecutionStatus="Running"'
    from rich.table import Table

    table = Table()
    for column in ("service", "state", "stage", "weight", "since", "workflow"):
        table.add_column(column)
    count = 0
    async for execution in runs.executions(client, query):
        attributes = execution.typed_search_attributes
        run_state = execution.status.name.lower() if execution.status is not None else "-"
        weight = attributes.get(visibility.WEIGHT)
        table.add_row(
            attributes.get(visibility.SERVICE) or service_of(execution.id),
            attributes.get(visibility.STATE) or run_state,
            attributes.get(visibility.STAGE) or "-",
            "-" if weight is None else str(weight),
            f"{execution.start_time:%Y-%m-%d %H:%M}",
            execution.id,
        )
        count += 1
    out.print(table if count else "no rollouts match")
    return 0


async def cmd_setup(args: argparse.Namespace) -> int:
    client = await connect_client()
    added = await starting.register_search_attributes(client)
    if added:
        out.print(f"registered search attributes: {', '.join(added)}")
    else:
        out.print("search attributes already registered")
    return 0
