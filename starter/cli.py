"""`rollout`: validate plans, start rollouts, watch and steer them, and run the dev stack.

Every run of the program ends through ``main``, with one of the exit codes in EPILOG.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shlex
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

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
from plans.visibility import ROLLOUT_WORKFLOW, service_of
from starter import devstack, operations, render
from worker.config import (
    DEFAULT_ADDRESS,
    DEFAULT_TASK_QUEUE,
    connect,
    end_process,
    task_queue,
)

EXIT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_ROLLED_BACK = 3
EXIT_ABORTED = 4
EXIT_INTERRUPTED = 130
DEFAULT_DIR = Path(".rollout")
CLAIM_WAIT_S = 15.0

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _stack_dir() -> Path:
    return Path(os.environ.get("ROLLOUT_DIR", DEFAULT_DIR))


def _use_dev_stack_when_unset() -> devstack.StackInfo | None:
    """With no address from the environment or a profile, use the dev stack in ./.rollout.

    The order is TEMPORAL_ADDRESS, then the temporal.toml profile, then a dev stack that
    is up in $ROLLOUT_DIR (default ./.rollout), then localhost:7233.
    """
    directory = _stack_dir()
    if not devstack.stack_file(directory).exists():
        return None
    info = devstack.load(directory)
    if not _address_configured() and devstack.is_up(directory):
        os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
        os.environ.setdefault("TEMPORAL_NAMESPACE", info.namespace)
        os.environ.setdefault("ROLLOUT_TASK_QUEUE", info.task_queue)
    return info


def _address_configured() -> bool:
    """TEMPORAL_ADDRESS or the active temporal.toml profile names a server."""
    from temporalio.envconfig import ClientConfig

    return "target_host" in ClientConfig.load_client_connect_config()


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
    if state == RolloutState.REFUSED:
        return EXIT_ERROR  # another rollout moves its target; nothing was moved
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
    # Refused here, not later, when another running rollout moves the same target.
    owned = await operations.await_target(client, plan, handle, timeout=CLAIM_WAIT_S)
    out.print(f"started {plan.workflow_id} (run {handle.result_run_id})")
    out.print(f"Temporal UI: {ui_link(plan.workflow_id)}")
    if not owned:
        err.print(
            f"note: no worker has picked the rollout up within {CLAIM_WAIT_S:g}s; it claims"
            f" {plan.router.target_key()} (or is refused) once one does:"
            f" `rollout status {plan.service}` shows which"
        )
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


EXIT_FROM_RECORDS = 5
"""`status` showed Temporal's own records of the run: no worker answered its status query."""


async def cmd_status(args: argparse.Namespace) -> int:
    client = await _client()
    answer = await operations.read_status(client, args.service)
    records = isinstance(answer, operations.TemporalRecords)
    if args.json:
        print(json.dumps(render.as_json(answer), indent=2))
        return EXIT_FROM_RECORDS if records else 0
    if not args.watch:
        out.print(render.answer_view(answer))
        out.print(f"Temporal UI: {ui_link(operations.workflow_id(args.service))}")
        return EXIT_FROM_RECORDS if records else 0
    from rich.live import Live

    # A worker outage, or Temporal out of reach for a while, does not end the watch.
    note, away = "", None
    with Live(render.watch_view(answer, note), console=out, refresh_per_second=4) as live:
        while True:
            if isinstance(answer, operations.TemporalRecords):
                away = away or answer.as_of
                note = f"no worker answers since {away:%H:%M:%S} UTC; still watching"
                if answer.closed:
                    live.update(render.watch_view(answer, ""))
                    return _records_exit_code(answer)
            else:
                if away is not None:
                    note = (
                        f"worker back at {answer.as_of or away:%H:%M:%S} UTC (none answered"
                        f" from {away:%H:%M:%S}): the status is the workflow's own again"
                    )
                    away = None
                if answer.state.final:
                    live.update(render.watch_view(answer, note))
                    return _exit_code(answer.state)
            live.update(render.watch_view(answer, note))
            await asyncio.sleep(1)
            try:
                answer = await operations.read_status(client, args.service)
            except operations.NoSuchRollout:
                raise
            except (RolloutError, RPCError) as error:
                message = error.message if isinstance(error, RPCError) else str(error)
                note = f"cannot read the status now ({message}); still watching"


def _records_exit_code(records: operations.TemporalRecords) -> int:
    """A run that ended while no worker answered: its end as recorded by Temporal."""
    if records.final_state is not None:
        return _exit_code(records.final_state)
    if records.execution_status == "canceled":
        return EXIT_ABORTED
    # Terminated or timed out: no rollback ran, so traffic may still reach the canary.
    return EXIT_ERROR


async def cmd_command(args: argparse.Namespace) -> int:
    command = OperatorCommand(kind=CommandKind(args.command), by=args.by, reason=args.reason)
    client = await _client()
    record = await operations.send_command(client, args.service, command)
    out.print(f"[green]{record.kind}[/] taken for {args.service} (by {record.by})")
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    client = await _client()
    query = args.query or f'WorkflowType="{ROLLOUT_WORKFLOW}" AND ExecutionStatus="Running"'
    from rich.table import Table

    table = Table()
    for column in ("service", "state", "stage", "weight", "since", "workflow"):
        table.add_column(column)
    count = 0
    async for execution in client.list_workflows(query):
        attributes = execution.search_attributes
        service = (attributes.get("RolloutService") or [service_of(execution.id)])[0]
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
    try:
        info = devstack.up(Path(args.dir))
    except KeyboardInterrupt:
        err.print("interrupted: the processes already started were stopped")
        raise
    print(json.dumps(devstack.dump(info), indent=2))
    word = "already running" if info.reused else "up"
    folder = shlex.quote(info.dir)
    lines = [
        f"dev stack {word} in {info.dir}; Temporal UI {info.ui_url}",
        f"use it from any folder: export ROLLOUT_DIR={folder}",
        f"  (or: export TEMPORAL_ADDRESS={info.temporal_address})",
        f"stop it with: rollout dev down --dir {folder}",
    ]
    for line in lines:
        err.print(escape(line), soft_wrap=True)
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
    # Started in this thread, where SIGTERM and Ctrl-C arrive: interrupted, the demo stops
    # the processes it started (a stack that was running before it stays up).
    with devstack.running(directory, keep=True) as info:
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
            out.print(
                f"the canary was faulty before: waiting {settle:.0f}s for its errors to age out"
            )
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


EPILOG = f"""\
exit codes:
  {EXIT_PROMOTED}    done; for start --follow, status --watch and demo: the rollout was promoted
  {EXIT_ERROR}    error: Temporal unreachable, no such rollout, a command or a start refused
       (the reason is printed), a run terminated without a rollback (status --watch),
       a dev stack problem, or an unexpected failure (its traceback is printed)
  {EXIT_INVALID}    invalid plan (every wrong field is named) or invalid command line
  {EXIT_ROLLED_BACK}    the rollout was rolled back (start --follow, status --watch, demo)
  {EXIT_ABORTED}    the rollout was aborted or cancelled (start --follow, status --watch, demo)
  {EXIT_FROM_RECORDS}    status shows Temporal's own records: no worker answered its status query
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); a rollout keeps running in Temporal

environment:
  TEMPORAL_ADDRESS       host:port of the Temporal frontend
  TEMPORAL_NAMESPACE     namespace (default: default)
  TEMPORAL_API_KEY       API key, e.g. for Temporal Cloud
  TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME
                         TLS to the server
  TEMPORAL_PROFILE       profile of the config file (default: default)
  TEMPORAL_CONFIG_FILE   the config file (default ~/.config/temporalio/temporal.toml)
  TEMPORAL_UI_URL        base of the Temporal UI links printed (default: the dev
                         stack's UI, else http://localhost:8233)
  ROLLOUT_DIR            the dev stack's folder (default {DEFAULT_DIR})
  ROLLOUT_TASK_QUEUE     the workers' task queue that start uses (default {DEFAULT_TASK_QUEUE})

which Temporal server:
  1. TEMPORAL_ADDRESS, when set;
  2. else the address of the temporal.toml profile, when it names one;
  3. else the dev stack in $ROLLOUT_DIR (default ./{DEFAULT_DIR}) when it is up: its address,
     and its namespace and task queue unless TEMPORAL_NAMESPACE or ROLLOUT_TASK_QUEUE say
     otherwise;
  4. else {DEFAULT_ADDRESS}.
  Credentials and TLS come from the TEMPORAL_* variables or the profile in every case.
  `rollout-worker` reads the same variables and profile, but never looks for a dev stack.
"""

# What each operator command does, for its help: (one line, the paragraph of its page).
COMMAND_HELP: dict[CommandKind, tuple[str, str]] = {
    CommandKind.PAUSE: (
        "stop the bake clock and the progression (gates are still checked)",
        "Pause a rollout: the bake clock and the progression stop until `rollout resume`."
        " Gates are still checked while paused, and a failing gate still rolls back.",
    ),
    CommandKind.RESUME: (
        "continue a paused rollout where it stopped",
        "Resume a paused rollout: the bake clock runs again from where it stopped. After a"
        " pause by the gates or a deadline, `rollout retry` also checks the gates at once.",
    ),
    CommandKind.APPROVE: (
        "let a stage that waits for approval go on to the next stage",
        "Approve the current stage of a rollout that waits for approval (`approval: true`)."
        " Refused while the stage is still baking, with the time left.",
    ),
    CommandKind.PROMOTE: (
        "skip the remaining stages and send all traffic to the canary",
        "Promote a rollout: skip the remaining stages and shift 100% of traffic to the"
        " canary; the run ends promoted.",
    ),
    CommandKind.ROLLBACK: (
        "put all traffic back on stable; the run ends rolled back",
        "Roll a rollout back: the compensation path restores 100% stable traffic, and the"
        " run ends rolled back (Failed in the Temporal UI) with your reason.",
    ),
    CommandKind.ABORT: (
        "put all traffic back on stable; the run ends aborted, not failed",
        "Abort a rollout: stable gets 100% of traffic again, like a rollback, but the run"
        " ends aborted, which does not count as a failure of the release (a freeze, say).",
    ),
    CommandKind.RETRY: (
        "check the gates again at once after a pause by gates or by a deadline",
        "Retry a stage paused by its gates or by its progress deadline: the rollout resumes,"
        " the gates' inconclusive streaks start over and the gates are checked at once.",
    ),
}

SERVICE_HELP = "the plan's service (its workflow id is rollout-SERVICE)"
DIR_HELP = "the dev stack's folder: configs, logs, the Temporal database (default: %(default)s)"


def _page(help: str) -> dict[str, Any]:
    """Keyword arguments for add_parser: the same sentence in the list and on the page."""
    return {"help": help, "description": help[0].upper() + help[1:] + "."}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="rollout",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = root.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", **_page("check a plan offline and name every wrong field"))
    p.add_argument("plan", help="the plan file (YAML); exit 2 when it is not valid")
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser(
        "start", **_page("start a rollout from a plan; print its workflow id and UI link")
    )
    p.add_argument("plan", help="the plan file (YAML); it is validated first")
    p.add_argument(
        "--follow",
        action="store_true",
        help="print progress until the rollout ends; exit 0 promoted, 3 rolled back, 4 aborted",
    )
    p.add_argument(
        "--task-queue",
        help="the workers' task queue (default: $ROLLOUT_TASK_QUEUE, else the dev stack's,"
        " else rollouts)",
    )
    p.set_defaults(run=cmd_start)

    p = sub.add_parser(
        "status",
        **_page("show where a rollout stands: state, stage, weights, gates, audit trail"),
        epilog="Exit 0: the workflow answered. Exit 5: no worker answered within 2 s, and what"
        " is shown is Temporal's own records of the run (run state, the Rollout* search"
        " attributes, the last gate check and events in its history, the task queue's last"
        " poll). --watch keeps watching through a worker outage and ends with the rollout:"
        " 0 promoted, 3 rolled back, 4 aborted or cancelled, 1 terminated.",
    )
    p.add_argument("service", help=SERVICE_HELP)
    p.add_argument(
        "--json",
        action="store_true",
        help='print the status as JSON, for scripts; "source" says "query" or "records"',
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="redraw until the rollout ends, through worker outages;"
        " exit 0 promoted, 3 rolled back, 4 aborted",
    )
    p.set_defaults(run=cmd_status)

    for kind in CommandKind:
        short, page = COMMAND_HELP[kind]
        p = sub.add_parser(
            kind.value,
            help=short,
            description=page + " The command is taken, or refused with the reason (exit 1).",
        )
        p.add_argument("service", help=SERVICE_HELP)
        p.add_argument("--reason", default="", help="why; kept in the audit trail")
        p.add_argument(
            "--by", default=_user(), help="who, for the audit trail (default: %(default)s)"
        )
        p.set_defaults(run=cmd_command, command=kind.value)

    p = sub.add_parser(
        "list",
        **_page("list the running rollouts, or the workflows a visibility query matches"),
    )
    p.add_argument(
        "--query",
        help="a Temporal visibility query instead of the running rollouts, e.g."
        ' RolloutState="paused" or RolloutService="checkout"',
    )
    p.set_defaults(run=cmd_list)

    p = sub.add_parser(
        "setup", **_page("register the Rollout* search attributes on the cluster, once")
    )
    p.set_defaults(run=cmd_setup)

    dev = sub.add_parser(
        "dev",
        **_page(
            "run the dev stack on 127.0.0.1: Temporal, HAProxy, Prometheus, the demo service,"
            " load and a worker"
        ),
    ).add_subparsers(dest="dev", required=True, metavar="ACTION")
    p = dev.add_parser(
        "up", **_page("start the dev stack in the background and print its stack.json")
    )
    p.add_argument("--dir", default=str(_stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_dev_up)
    p = dev.add_parser("down", **_page("stop every process the dev stack started, by pid"))
    p.add_argument("--dir", default=str(_stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_dev_down)
    p = dev.add_parser(
        "fault", **_page("make a demo version fail or slow down, live (0 and 0 heal it)")
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="share of requests answered with a 500, from 0 to 1 (default: %(default)s)",
    )
    p.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        help="delay added to every request, in milliseconds (default: %(default)s)",
    )
    p.add_argument(
        "--version",
        choices=["canary", "stable"],
        default="canary",
        help="which demo version misbehaves (default: %(default)s)",
    )
    p.add_argument("--dir", default=str(_stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_dev_fault)

    p = sub.add_parser(
        "demo",
        **_page(
            "start the dev stack and a real rollout on it, followed live (exit codes as for"
            " start --follow)"
        ),
    )
    p.add_argument(
        "--faulty",
        action="store_true",
        help="make the canary fail 30%% of its requests at 50%%, to watch a rollback",
    )
    p.add_argument("--dir", default=str(_stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_demo)
    return root


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main(argv: list[str] | None = None) -> NoReturn:
    """Run one command and end with its exit code (the table is in EPILOG).

    As the `rollout` program (``argv`` None) the process ends through ``end_process``:
    output flushed, then ``os._exit``, never interpreter finalization, which races the
    Temporal SDK's Rust threads and could turn any exit code into SIGABRT or SIGSEGV.
    Called with ``argv`` (tests, other Python code) it raises SystemExit like sys.exit.
    """
    code = run_command(argv)
    if argv is None:
        end_process(code)
    sys.exit(code)


def run_command(argv: list[str] | None) -> int:
    """Parse argv, run the command, report any error; the exit code, for every outcome."""
    try:
        args = parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int | Awaitable[int]] = args.run
        result: Any = run(args)
        return int(asyncio.run(result) if asyncio.iscoroutine(result) else result)
    except PlanError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_INVALID
    except RolloutError as error:
        err.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_ERROR
    except RPCError as error:
        err.print(f"[red]error[/]: Temporal said: {escape(error.message)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`rollout list | head`): nothing more can be shown.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except SystemExit as exit_:
        # argparse ends --help with 0 and a usage error with 2.
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        traceback.print_exc()
        return EXIT_ERROR


if __name__ == "__main__":
    main()
