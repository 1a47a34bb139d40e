"""`rollout` on experiments: what validate prints of one, its status, following it to its end.

Starting an experiment and its commands go through ``client.api`` like a rollout's."""

from __future__ import annotations

import argparse
import asyncio
import json

from rich.markup import escape
from temporalio.client import Client

from client import experiments
from client.runs import workflow_id
from plans.durations import format_duration
from plans.experiment import ExperimentPlan
from plans.runtime.experiment import ExperimentState, ExperimentStatus
from starter.exits import EXIT_ABORTED, EXIT_ERROR, EXIT_PROMOTED, EXIT_ROLLED_BACK
from starter.render import out
from starter.server import ui_link

FOLLOW_EVERY_S = 1.0


def validate_lines(path: str, plan: ExperimentPlan) -> list[str]:
    """What `validate` prints of a valid experiment: the plan, the variants, the gates."""
    ex = plan.experiment
    guardrails = ", ".join(g.name for g in plan.guardrails) or "none"
    lines = [f"ok: {path} is a valid experiment for {plan.service} ({plan.workflow_id})"]
    for v in ex.variants:
        role = " (control)" if v.name == ex.control else ""
        lines.append(f"  {v.name}: {v.share}%{role}")
    lines.append(
        f"  primary {ex.primary} ({plan.primary.describe_threshold()}), guardrails: {guardrails}"
    )
    lines.append(
        f"  checks every {format_duration(ex.check_every)}, for at most"
        f" {format_duration(ex.max_duration)}; the winner rolls forward to 100%"
    )
    return lines


def validated(path: str, plan: ExperimentPlan, *, as_json: bool = False) -> int:
    """`rollout validate` of a valid experiment: its lines, or the experiment as JSON."""
    if as_json:
        data = {"valid": True, "file": path, "kind": "experiment", "service": plan.service}
        data |= {"workflow_id": plan.workflow_id, "router": plan.router.describe()}
        data |= plan.experiment.model_dump(mode="json")
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(validate_lines(path, plan)))
    return 0


def exit_code(state: ExperimentState) -> int:
    """An ended experiment's exit code: 0 when it ended by itself (a winner, or the control
    kept), 3 when it was rolled back, 1 when refused its target."""
    if state in (ExperimentState.ROLLED_FORWARD, ExperimentState.KEPT_CONTROL):
        return EXIT_PROMOTED
    if state == ExperimentState.ROLLED_BACK:
        return EXIT_ROLLED_BACK
    if state == ExperimentState.REFUSED:
        return EXIT_ERROR
    return EXIT_ABORTED


def view(status: ExperimentStatus) -> str:
    """The status as text: the state, then one line per variant, then the last events."""
    state = status.state.value.replace("_", " ")
    elapsed = format_duration_s(status.elapsed_s)
    lines = [
        f"[bold]{escape(status.service)}[/] experiment: {state}"
        f" ({elapsed} of {format_duration_s(status.max_duration_s)}, {status.checks} checks)",
        f"primary {escape(status.primary)}: {status.better} is better, judged at"
        f" {status.confidence:.2%} per variant",
    ]
    for v in status.variants:
        head = f"  {escape(v.name)} {v.share}%"
        if v.control:
            lines.append(f"{head} (control)")
            continue
        if v.out:
            lines.append(f"{head} [red]out[/]: {escape(v.out)}")
            continue
        effect = v.effect_text() or "no effect measured yet"
        better = " [green]better[/]" if v.better else ""
        lines.append(f"{head} {escape(status.primary)}: {effect}{better}")
        if v.primary is not None and v.primary.reason:
            lines.append(f"      {escape(v.primary.reason)}")
        for name, verdict in v.guardrails.items():
            lines.append(f"      guardrail {escape(name)}: {verdict.outcome.value}")
    if status.winner:
        lines.append(f"winner: [green]{escape(status.winner)}[/]")
    if status.reason:
        lines.append(f"reason: {escape(status.reason)}")
    for event in status.events[-5:]:
        lines.append(f"  {event.at:%H:%M:%S} {event.kind}: {escape(event.text)}")
    return "\n".join(lines)


def format_duration_s(seconds: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=int(seconds)))


async def status(args: argparse.Namespace, client: Client) -> int:
    """`rollout status SERVICE` of an experiment (--json, --watch)."""
    answer = await experiments.experiment_status(client, args.service)
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    if not args.watch:
        out.print(view(answer))
        out.print(f"Temporal UI: {ui_link(workflow_id(args.service))}")
        return 0
    return await follow(client, args.service)


async def follow(client: Client, service: str, *, as_json: bool = False) -> int:
    """Print each change until the experiment ends; its exit code."""
    last = ""
    while True:
        answer = await experiments.experiment_status(client, service)
        shown = answer.model_dump_json(exclude={"as_of", "elapsed_s"}) if as_json else view(answer)
        if shown != last:
            if as_json:
                print(answer.model_dump_json(), flush=True)
            else:
                out.print(shown)
            last = shown
        if answer.state.final:
            return exit_code(answer.state)
        await asyncio.sleep(FOLLOW_EVERY_S)
