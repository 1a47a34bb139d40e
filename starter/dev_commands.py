"""`rollout dev` and `rollout demo`: the dev stack on 127.0.0.1, and a rollout followed on it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

from rich.markup import escape
from temporalio.client import Client

import devstack
from client import reading, starting
from client.runs import report_link
from client.signing import user_name
from demo import loadgen
from devstack import fleet as fleetstack
from devstack.info import StackInfo, describe, dump
from devstack.processes import StackError
from devstack.trust import ALLOWED_SIGNERS
from plans import Plan, RolloutStatus
from starter import render
from starter.exits import exit_code
from starter.render import err, out
from starter.rollout_commands import load
from starter.server import connect_client, ui_link

# Requests a second on blue-green's preview route while the demo runs: enough for the
# pre-promotion gates' 50 samples in a 30s window.
PREVIEW_RPS = 5.0


def cmd_dev_up(args: argparse.Namespace) -> int:
    options: devstack.StackOptions = {"router": args.router, "alerts": args.alerts}
    if args.targets:
        options["targets"] = fleetstack.parse_targets(args.targets)
    if args.variants:
        options["variants"] = [name.strip() for name in args.variants.split(",") if name.strip()]
    try:
        info = devstack.up(Path(args.dir), **options)
    except KeyboardInterrupt:
        err.print("interrupted: the processes already started were stopped")
        raise
    _same_router(info, args.router)
    print(json.dumps(dump(info), indent=2))
    word = "already running" if info.reused else "up"
    folder = shlex.quote(info.dir)
    lines = [
        f"dev stack {word} in {info.dir}; Temporal UI {info.ui_url}",
        f"use it from any folder: export ROLLOUT_DIR={folder}",
        f"  (or: export TEMPORAL_ADDRESS={info.temporal_address})",
        f"stop it with: rollout dev down --dir {folder}",
        f"its worker trusts your SSH key for signed approvals ({info.dir}/{ALLOWED_SIGNERS}):"
        f" a plan may name `approvers: [{user_name()}]`",
    ]
    for line in lines:
        err.print(escape(line), soft_wrap=True)
    return 0


def _same_router(info: devstack.StackInfo, wanted: str) -> None:
    """A running stack found with another router than asked for is an error, not a surprise."""
    if info.router != wanted:
        raise devstack.StackError(
            f"the dev stack in {info.dir} runs with {info.router}, not {wanted}: stop it with"
            f" `rollout dev down --dir {shlex.quote(info.dir)}`, or use --router {info.router}"
        )


def cmd_dev_down(args: argparse.Namespace) -> int:
    stopped = devstack.down(Path(args.dir))
    if args.json:
        print(json.dumps({"stopped": stopped}, indent=2))
        return 0
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_dev_fault(args: argparse.Namespace) -> int:
    result = devstack.fault(Path(args.dir), args.error_rate, args.latency_ms, version=args.version)
    if args.json:
        print(json.dumps({"version": args.version, "fault": result}, indent=2))
        return 0
    out.print(f"{args.version} now: {json.dumps(result)}")
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    if args.fleet:
        from starter import fleet_demo

        return await fleet_demo.run(args)
    directory = Path(args.dir)
    routers = "HAProxy, Envoy" if args.router == "envoy" else "HAProxy"
    out.print(f"starting the dev stack (Temporal, {routers}, Prometheus, demo service, worker)...")
    # Started in this thread, where SIGTERM and Ctrl-C arrive: interrupted, the demo stops
    # the processes it started (a stack that was running before it stays up).
    with devstack.running(directory, keep=True, router=args.router) as info:
        _same_router(info, args.router)
        os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
        os.environ["TEMPORAL_NAMESPACE"] = info.namespace
        os.environ["TEMPORAL_UI_URL"] = info.ui_url
        out.print(describe(info))
        fault_url = info.canary_url + "fault"
        if info.router == "flagd":
            fault_url += "?version=canary"
        previous = await asyncio.to_thread(_current_fault, fault_url)
        await asyncio.to_thread(devstack.fault, directory, 0.0, 0)
        plan = load(_demo_plan_file(info, args.strategy))
        if previous:
            # Errors of an earlier faulty demo would still sit in the gates' windows.
            settle = max((g.window.total_seconds() for g in plan.gates), default=30.0) + 5
            out.print(
                f"the canary was faulty before: waiting {settle:.0f}s for its errors to age out"
            )
            await asyncio.sleep(settle)
        client = await connect_client()
        handle = await starting.start_rollout(client, plan, info.task_queue)
        link = ui_link(plan.workflow_id)
        out.print(f"\nrollout {plan.workflow_id} started (run {handle.result_run_id})")
        out.print(f"Temporal UI: [bold]{link}[/]")
        if args.faulty:
            at = "once it is promoted" if plan.blue_green else "when it reaches 50%"
            out.print(f"the canary will start failing 30% of its requests {at}")
        async with _preview_traffic(info, plan):
            status = await _follow(client, plan, directory, args.faulty)
        out.print(f"\nTemporal UI: {link}")
        report = await report_link(client, plan.workflow_id)
        out.print(
            f"Report: {report}" if report else f"Report: `rollout report {plan.service}`",
            soft_wrap=True,
        )
        out.print(
            "The stack keeps running so you can look around; stop it with"
            f" `rollout dev down --dir {directory}`."
        )
        return exit_code(status.state)


async def _follow(client: Client, plan: Plan, directory: Path, faulty: bool) -> RolloutStatus:
    """Print each new progress line until the rollout ends; make the canary fail if asked."""
    faulted = False
    last = None
    async for status in reading.follow(client, plan.service, every=0.5):
        line = render.progress_line(status)
        if line != last:
            out.print(line, soft_wrap=True)
            last = line
        if faulty and not faulted and status.canary_weight >= 50:
            await asyncio.to_thread(devstack.fault, directory, 0.3, 0)
            out.print("[red]fault injected: the canary now fails 30% of requests[/]")
            faulted = True
        if status.state.final:
            break
    return status


def _demo_plan_file(info: StackInfo, strategy: str) -> str:
    if strategy == "canary":
        return info.plan_file
    if info.router != "haproxy":
        raise StackError(
            f"the blue-green demo moves HAProxy's weights, and this stack runs {info.router}:"
            " run it with --router haproxy (a flag is blue-green's preview at 0% and 100%)"
        )
    if info.blue_green_plan_file is None:
        raise StackError(
            f"the dev stack in {info.dir} was started without a preview route: stop it with"
            f" `rollout dev down --dir {info.dir}` and run the demo again"
        )
    return info.blue_green_plan_file


@contextlib.asynccontextmanager
async def _preview_traffic(info: StackInfo, plan: Plan) -> AsyncIterator[None]:
    """For blue-green, a steady trickle on the preview route, as testers would send."""
    if plan.blue_green is None or info.preview_url is None:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(
        loadgen.run(info.preview_url, PREVIEW_RPS, stop=stop, report_every=1e9)
    )
    try:
        yield
    finally:
        stop.set()
        await task


def _current_fault(fault_url: str) -> bool:
    """Whether the demo canary is set to fail or slow down right now."""
    import httpx

    try:
        fault = httpx.get(fault_url, timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    # Not the demo's answer: then `fault` below says what answers there, in a sentence.
    return isinstance(fault, dict) and bool(fault.get("error_rate") or fault.get("latency_ms"))
