"""`rollout` on plans and rollouts: validate, start, status, the operator commands, list, setup."""

from __future__ import annotations

import argparse
import asyncio
import json

from rich.markup import escape
from temporalio.service import RPCError

from client import experiments, releases, starting
from client.api import Rollouts, Started, running_rollouts
from client.records import TemporalRecords
from client.runs import NoSuchRollout, workflow_id
from plans import Plan, RolloutError
from plans.experiment import ExperimentPlan, load_any_plan
from plans.governance.approvals import who
from plans.release_plan import ReleasePlan
from plans.runtime.release import ReleaseCommandRecord
from starter import answers, experiment_view, release_commands, release_view, render, traffic
from starter.exits import EXIT_ERROR, EXIT_FROM_RECORDS, exit_code, records_exit_code
from starter.render import err, out
from starter.server import connect_client, ui_link

# -- plans ---------------------------------------------------------------------------------------


def load(path: str) -> Plan:
    from plans import load_plan

    return load_plan(path)


# -- rollouts --------------------------------------------------------------------------------


async def cmd_start(args: argparse.Namespace) -> int:
    plan = load_any_plan(args.plan)
    rollouts = Rollouts(await connect_client(), task_queue=args.task_queue)
    # A rollout is refused here, not later, when another running rollout moves its target.
    started = await rollouts.start(plan, key=args.key)
    link = ui_link(started.workflow_id)
    if args.json:
        print(started_answer(started, link).model_dump_json(), flush=True)
    else:
        out.print(f"started {started.workflow_id} (run {started.run_id})")
        out.print(f"Temporal UI: {link}")
    for note in started.notes:
        err.print(note)
    if not args.follow:
        return 0
    if isinstance(plan, ReleasePlan):
        return await release_commands.follow(rollouts.client, plan.service, as_json=args.json)
    if isinstance(plan, ExperimentPlan):
        return await experiment_view.follow(rollouts.client, plan.service, as_json=args.json)
    return await _follow(rollouts, plan.service, as_json=args.json)


def started_answer(started: Started, link: str) -> answers.Started:
    return answers.Started(
        kind=started.kind,
        service=started.service,
        workflow_id=started.workflow_id,
        run_id=started.run_id,
        ui_url=link,
        target_claimed=started.target_claimed,
        notes=list(started.notes),
    )


async def _follow(rollouts: Rollouts, service: str, *, as_json: bool = False) -> int:
    """Print each change until the rollout ends (a line, or a JSON line); its exit code."""
    last = None
    async for status in rollouts.follow(service):
        if as_json:
            print(json.dumps(render.as_json(status)), flush=True)
        else:
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
    if await experiments.is_experiment(client, args.service):
        return await experiment_view.status(args, client)
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
    rollouts = Rollouts(await connect_client())
    record = await rollouts.command(
        args.service,
        args.command,
        reason=args.reason,
        by=args.by,
        key=args.key,
        target=args.target,
        variant=getattr(args, "variant", ""),
    )
    if args.json:
        scope = "release" if isinstance(record, ReleaseCommandRecord) else "rollout"
        print(answers.dump(answers.Commanded(service=args.service, scope=scope, record=record)))
    elif isinstance(record, ReleaseCommandRecord):
        for line in release_view.command_lines(record):
            out.print(line)
    else:
        sender = who(record.by, record.verified) if record.verified else record.by
        sender += f"; {record.note}" if record.note else ""
        out.print(f"[green]{record.kind}[/] taken for {args.service} (by {escape(sender)})")
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    rollouts = Rollouts(await connect_client())
    found = await rollouts.list(args.query)
    if args.json:
        listed = [answers.Listed(**vars(summary)) for summary in found]
        query = args.query or running_rollouts()
        print(answers.dump(answers.ListAnswer(query=query, rollouts=listed)))
        return 0
    if not found:
        out.print("no rollouts match")
        return 0
    from rich.table import Table

    table = Table()
    for column in ("service", "state", "stage", "weight", "since", "workflow"):
        table.add_column(column)
    for summary in found:
        table.add_row(
            summary.service,
            summary.state,
            summary.stage or "-",
            "-" if summary.weight is None else str(summary.weight),
            f"{summary.started_at:%Y-%m-%d %H:%M}",
            summary.workflow_id,
        )
    out.print(table)
    return 0


async def cmd_setup(args: argparse.Namespace) -> int:
    client = await connect_client()
    added = await starting.register_search_attributes(client)
    if args.json:
        every = sorted(starting.SEARCH_ATTRIBUTES)
        print(answers.dump(answers.SetupAnswer(added=added, attributes=every)))
    elif added:
        out.print(f"registered search attributes: {', '.join(added)}")
    else:
        out.print("search attributes already registered")
    return 0
