"""`rollout`: validate and start rollouts, watch them, steer them, and run the dev stack."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from temporalio.client import Client
from temporalio.service import RPCError

from plans import (
    CommandKind,
    OperatorCommand,
    Plan,
    PlanError,
    RolloutError,
    RolloutState,
    format_duration,
)
from starter import devstack, operations, render
from worker.config import connect, task_queue

EXIT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_ROLLED_BACK = 3
EXIT_ABORTED = 4
DEFAULT_DIR = Path(".rollout")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _stack_dir() -> Path:
    return Path(os.environ.get("ROLLOUT_DIR", DEFAULT_DIR))


def _use_dev_stack_when_unset() -> devstack.StackInfo | None:
    """With no TEMPORAL_ADDRESS set, talk to the dev stack of ./.rollout if it is up."""
    directory = _stack_dir()
    if not devstack.stack_file(directory).exists():
        return None
    info = devstack.load(directory)
    if "TEMPORAL_ADDRESS" not in os.environ and devstack.is_up(directory):
        os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
        os.environ.setdefault("TEMPORAL_NAMESPACE", info.namespace)
        os.environ.setdefault("ROLLOUT_TASK_QUEUE", info.task_queue)
    return info


async def _client() -> Client:
    _use_dev_stack_when_unset()
    try:
        return await connect()
    except RuntimeError as error:
        address = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
        raise RolloutError(
            f"cannot reach Temporal at {address} ({error}). Set TEMPORAL_ADDRESS, or start"
            " the dev stack with `rollout dev up`"
        ) from None


def ui_link(workflow_id: str) -> str:
    base = os.environ.get("TEMPORAL_UI_URL")
    namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
    if base is None:
        info = _use_dev_stack_when_unset()
        base = info.ui_url if info is not None else "http://localhost:8233"
    return f"{base.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"


def _exit_code(state: RolloutState) -> int:
    if state == RolloutState.PROMOTED:
        return EXIT_PROMOTED
    if state == RolloutState.ROLLED_BACK:
        return EXIT_ROLLED_BACK
    return EXIT_ABORTED


# -- plans -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    plan = load(args.plan)
    out.print(
        f"[green]ok[/]: {escape(args.plan)} is a valid plan for {plan.service} ({plan.workflow_id})"
    )
    for index, stage in enumerate(plan.stages, 1):
        gates = ", ".join(g.name for g in plan.gates_for(stage)) or "no gates"
        approval = ", then approval" if stage.approval else ""
        out.print(
            f"  {index}. {stage.name}: {stage.weight}% for {format_duration(stage.bake)},"
            f" checks every {format_duration(stage.check_every)} ({gates}){approval}"
        )
    return 0


def load(path: str) -> Plan:
    from plans import load_plan

    return load_plan(path)


# -- rollouts --------------------------------------------------------------------------------


async def cmd_start(args: argparse.Namespace) -> int:
    plan = load(args.plan)
    client = await _client()
    handle = await operations.start_rollout(client, plan, args.task_queue or task_queue())
    out.print(f"started {plan.workflow_id} (run {handle.result_run_id})")
    out.print(f"Temporal UI: {ui_link(plan.workflow_id)}")
    if not await operations.search_attributes_registered(client):
        err.print(
            "note: this cluster lacks the Rollout* search attributes, so the run cannot be"
            " filtered by state in the UI or `rollout list`; register them with `rollout setup`"
        )
    if not args.follow:
        return 0
    return await _follow(client, plan.service)


async def _follow(client: Client, service: str) -> int:
    last = None
    async for status in operations.follow(client, service):
        line = render.progress_line(status)
        if line != last:
            out.print(line, soft_wrap=True)
            last = line
        if status.state.final:
            return _exit_code(status.state)
    return EXIT_ERROR


async def cmd_status(args: argparse.Namespace) -> int:
    client = await _client()
    status = await operations.status(client, args.service)
    if args.json:
        print(status.model_dump_json(indent=2))
        return 0
    if not args.watch:
        out.print(render.status_view(status))
        out.print(f"Temporal UI: {ui_link(operations.workflow_id(args.service))}")
        return 0
    from rich.live import Live

    with Live(render.status_view(status), console=out, refresh_per_second=4) as live:
        while not status.state.final:
            await asyncio.sleep(1)
            status = await operations.status(client, args.service)
            live.update(render.status_view(status))
    return _exit_code(status.state)


async def cmd_command(args: argparse.Namespace) -> int:
    command = OperatorCommand(kind=CommandKind(args.command), by=args.by, reason=args.reason)
    client = await _client()
    record = await operations.send_command(client, args.service, command)
    out.print(f"[green]{record.kind}[/] taken for {args.service} (by {record.by})")
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    client = await _client()
    query = args.query or 'WorkflowType="RolloutWorkflow" AND ExecutionStatus="Running"'
    from rich.table import Table

    table = Table()
    for column in ("service", "state", "stage", "weight", "since", "workflow"):
        table.add_column(column)
    count = 0
    async for execution in client.list_workflows(query):
        attributes = execution.search_attributes
        service = (attributes.get("RolloutService") or [execution.id.removeprefix("rollout-")])[0]
        table.add_row(
            str(service),
            str((attributes.get("RolloutState") or [execution.status.name.lower()])[0]),  # type: ignore[union-attr]
            str((attributes.get("RolloutStage") or ["-"])[0]),
            str((attributes.get("RolloutWeight") or ["-"])[0]),
            f"{execution.start_time:%Y-%m-%d %H:%M}",
            execution.id,
        )
        count += 1
    out.print(table if count else "no rollouts match")
    return 0


async def cmd_setup(args: argparse.Namespace) -> int:
    client = await _client()
    added = await operations.register_search_attributes(client)
    if added:
        out.print(f"registered search attributes: {', '.join(added)}")
    else:
        out.print("search attributes already registered")
    return 0


# -- the dev stack and the demo ----------------------------------------------------------------


def cmd_dev_up(args: argparse.Namespace) -> int:
    info = devstack.up(Path(args.dir))
    print(json.dumps(devstack.dump(info), indent=2))
    word = "already running" if info.reused else "up"
    err.print(f"dev stack {word}; Temporal UI {info.ui_url}; stop it with `rollout dev down`")
    return 0


def cmd_dev_down(args: argparse.Namespace) -> int:
    stopped = devstack.down(Path(args.dir))
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_dev_fault(args: argparse.Namespace) -> int:
    result = devstack.fault(Path(args.dir), args.error_rate, args.latency_ms, version=args.version)
    out.print(f"{args.version} now: {json.dumps(result)}")
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    out.print("starting the dev stack (Temporal, HAProxy, Prometheus, demo service, worker)...")
    info = await asyncio.to_thread(devstack.up, directory)
    os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
    os.environ["TEMPORAL_NAMESPACE"] = info.namespace
    os.environ["TEMPORAL_UI_URL"] = info.ui_url
    out.print(devstack.describe(info))
    previous = await asyncio.to_thread(_current_fault, info.canary_url)
    await asyncio.to_thread(devstack.fault, directory, 0.0, 0)
    plan = load(info.plan_file)
    if previous:
        # Errors of an earlier faulty demo would still sit in the gates' windows.
        settle = max((g.window.total_seconds() for g in plan.gates), default=30.0) + 5
        out.print(f"the canary was faulty before: waiting {settle:.0f}s for its errors to age out")
        await asyncio.sleep(settle)
    client = await _client()
    handle = await operations.start_rollout(client, plan, info.task_queue)
    link = ui_link(plan.workflow_id)
    out.print(f"\nrollout {plan.workflow_id} started (run {handle.result_run_id})")
    out.print(f"Temporal UI: [bold]{link}[/]")
    if args.faulty:
        out.print("the canary will start failing 30% of its requests when it reaches 50%")
    faulted = False
    last = None
    async for status in operations.follow(client, plan.service, every=0.5):
        line = render.progress_line(status)
        if line != last:
            out.print(line, soft_wrap=True)
            last = line
        if args.faulty and not faulted and status.canary_weight >= 50:
            await asyncio.to_thread(devstack.fault, directory, 0.3, 0)
            out.print("[red]fault injected: the canary now fails 30% of requests[/]")
            faulted = True
        if status.state.final:
            break
    out.print(f"\nTemporal UI: {link}")
    out.print(
        "The stack keeps running so you can look around; stop it with"
        f" `rollout dev down --dir {directory}`."
    )
    return _exit_code(status.state)


def _current_fault(canary_url: str) -> bool:
    """Whether the demo canary is set to fail or slow down right now."""
    import httpx

    try:
        fault = httpx.get(canary_url + "fault", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    return bool(fault.get("error_rate") or fault.get("latency_ms"))


# -- wiring ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rollout", description=__doc__)
    sub = root.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a plan and name every wrong field")
    p.add_argument("plan")
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("start", help="start a rollout from a plan")
    p.add_argument("plan")
    p.add_argument("--follow", action="store_true", help="show progress until it ends")
    p.add_argument(
        "--task-queue", help="worker task queue (default: $ROLLOUT_TASK_QUEUE, rollouts)"
    )
    p.set_defaults(run=cmd_start)

    p = sub.add_parser("status", help="where a rollout stands")
    p.add_argument("service")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="redraw until it ends")
    p.set_defaults(run=cmd_status)

    for kind in CommandKind:
        p = sub.add_parser(kind.value, help=f"{kind.value} a rollout")
        p.add_argument("service")
        p.add_argument("--reason", default="", help="why; kept in the audit trail")
        p.add_argument("--by", default=_user(), help="who (default: your OS user)")
        p.set_defaults(run=cmd_command, command=kind.value)

    p = sub.add_parser("list", help="running rollouts")
    p.add_argument("--query", help='a visibility query, e.g. RolloutState="paused"')
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("setup", help="register the Rollout* search attributes on the cluster")
    p.set_defaults(run=cmd_setup)

    dev = sub.add_parser("dev", help="the embedded dev stack").add_subparsers(
        dest="dev", required=True, metavar="ACTION"
    )
    p = dev.add_parser("up", help="start Temporal, HAProxy, Prometheus, demo service, worker")
    p.add_argument("--dir", default=str(_stack_dir()))
    p.set_defaults(run=cmd_dev_up)
    p = dev.add_parser("down", help="stop every process the stack started")
    p.add_argument("--dir", default=str(_stack_dir()))
    p.set_defaults(run=cmd_dev_down)
    p = dev.add_parser("fault", help="make the canary fail or slow down, live")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--version", choices=["canary", "stable"], default="canary")
    p.add_argument("--dir", default=str(_stack_dir()))
    p.set_defaults(run=cmd_dev_fault)

    p = sub.add_parser("demo", help="a real rollout on the dev stack, followed live")
    p.add_argument("--faulty", action="store_true", help="the canary starts failing mid-rollout")
    p.add_argument("--dir", default=str(_stack_dir()))
    p.set_defaults(run=cmd_demo)
    return root


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int | Awaitable[int]] = args.run
    try:
        result: Any = run(args)
        code = asyncio.run(result) if asyncio.iscoroutine(result) else result
    except PlanError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        sys.exit(EXIT_INVALID)
    except RolloutError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        sys.exit(EXIT_ERROR)
    except RPCError as error:
        err.print(f"[red]error[/]: Temporal said: {escape(error.message)}")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)
