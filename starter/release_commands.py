"""`rollout` on releases across a fleet: start, status as a tree, and the commands."""

from __future__ import annotations

import argparse
import asyncio

from rich.markup import escape
from temporalio.client import Client

from client import releases, signing
from client.connection import task_queue
from plans import OperatorCommand, RolloutError, format_duration
from plans.release import ReleaseCommand
from plans.release_plan import ReleasePlan, release_workflow_id
from starter import release_view
from starter.render import err, out
from starter.server import connect_client, ui_link

FOLLOW_EVERY_S = 1.0


def validate(path: str, plan: ReleasePlan) -> int:
    out.print(
        f"[green]ok[/]: {escape(path)} is a valid release of {plan.service} to"
        f" {len(plan.targets)} targets ({plan.workflow_id}); on a failing target:"
        f" {plan.on_target_failure}"
    )
    for i, wave in enumerate(plan.waves, 1):
        notes = [f"max {wave.max_parallel} at once"] if wave.max_parallel else []
        if wave.approval:
            notes.append("approval first")
        if wave.bake_between.total_seconds():
            notes.append(f"{format_duration(wave.bake_between)} after the previous wave")
        more = f" ({', '.join(notes)})" if notes else ""
        out.print(f"  wave {i}: {', '.join(wave.targets)}{more}")
        for name in wave.targets:
            stages = " -> ".join(f"{s.weight}%" for s in plan.targets[name].stages)
            out.print(f"    {name}: {escape(plan.targets[name].router.describe())}: {stages}")
    return 0


async def start(args: argparse.Namespace, plan: ReleasePlan) -> int:
    client = await connect_client()
    handle = await releases.start_release(client, plan, args.task_queue or task_queue())
    out.print(f"started {plan.workflow_id} (run {handle.result_run_id})")
    out.print(f"Temporal UI: {ui_link(plan.workflow_id)}")
    if plan.approval_rule.named and (note := await signing.claim_start(handle, args.key)):
        err.print(note)
    if not args.follow:
        return 0
    return await follow(client, plan.service)


async def follow(client: Client, service: str) -> int:
    """Print the tree each time it changes, until the release ends; its exit code."""
    last = ""
    while True:
        status = await releases.release_status(client, service)
        children = await releases.target_statuses(client, status)
        tree = release_view.release_tree(status, children)
        with out.capture() as captured:
            out.print(tree)
        shown = captured.get()
        if shown != last:
            out.print(tree)
            last = shown
        if status.state.final:
            return release_view.release_exit_code(status.state)
        await asyncio.sleep(FOLLOW_EVERY_S)


async def status(args: argparse.Namespace, client: Client) -> int:
    answer = await releases.release_status(client, args.service)
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    if args.watch:
        return await follow(client, args.service)
    out.print(release_view.release_tree(answer, await releases.target_statuses(client, answer)))
    out.print(f"Temporal UI: {ui_link(release_workflow_id(args.service))}")
    return 0


async def command(args: argparse.Namespace, client: Client, op: OperatorCommand) -> int:
    record = await releases.send_release_command(
        client, args.service, ReleaseCommand(command=op, target=args.target), key=args.key
    )
    for line in release_view.command_lines(record):
        out.print(line)
    return 0


def no_release_for_target(service: str, target: str) -> RolloutError:
    return RolloutError(
        f"--target {target}: no release of {service!r} is running; without a release,"
        f" `rollout status {service}-{target}` reads that rollout on its own"
    )
