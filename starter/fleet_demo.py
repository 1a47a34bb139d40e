"""`rollout demo --fleet`: a release across the dev stack's targets, followed as a tree."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import httpx

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import releases
from devstack.fleet import DEFAULT_TARGETS, fleet_plan, load_fleet, parse_targets
from devstack.info import describe
from devstack.processes import StackError
from plans import HAProxyRouter, TrafficSplit
from plans.release_plan import parse_release_plan
from starter import release_commands
from starter.render import out
from starter.server import connect_client, ui_link

FAULT_ERROR_RATE = 0.5
AGE_OUT_S = 15.0  # the gate's 10s window, and a scrape or two


async def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    targets = parse_targets(args.targets) if args.targets else list(DEFAULT_TARGETS)
    if args.faulty_target and args.faulty_target not in targets:
        raise StackError(
            f"--faulty-target {args.faulty_target}: not one of the targets ({', '.join(targets)})"
        )
    out.print(f"starting the dev stack with targets {', '.join(targets)}...")
    with devstack.running(directory, keep=True, targets=targets) as info:
        os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
        os.environ["TEMPORAL_NAMESPACE"] = info.namespace
        os.environ["TEMPORAL_UI_URL"] = info.ui_url
        out.print(describe(info))
        fleet = load_fleet(directory)
        faulted_before = False
        for name, parts in fleet.targets.items():
            faulty = name == args.faulty_target
            url = parts.canary_url + "fault"
            before = (await asyncio.to_thread(httpx.get, url, timeout=5.0)).json()
            faulted_before |= bool(before.get("error_rate")) and not faulty
            await asyncio.to_thread(
                httpx.post,
                url,
                json={"error_rate": FAULT_ERROR_RATE if faulty else 0.0, "latency_ms": 0},
                timeout=5.0,
            )
        # Each run of the demo releases the same canary again: every backend starts on stable.
        for name in fleet.targets:
            router = HAProxyRouter(runtime_api=fleet.haproxy_admin_tcp, backend=name)
            await asyncio.to_thread(
                HAProxyRuntime(router).set_split, "stable", "canary", TrafficSplit.canary_percent(0)
            )
        policy = "rollback_all" if args.rollback_all else "halt"
        plan = parse_release_plan(fleet_plan(fleet, on_target_failure=policy), fleet.plan_file)
        if args.faulty_target:
            out.print(
                f"the canary of {args.faulty_target} fails {FAULT_ERROR_RATE:.0%} of its"
                f" requests: its wave will halt the release ({policy})"
            )
        client = await connect_client()
        if await releases.release_exists(client, plan.service, running_only=True):
            raise StackError(
                f"a release of {plan.service} is still running: `rollout abort {plan.service}`"
                " ends it"
            )
        if faulted_before:
            out.print(
                f"a canary was faulty before: waiting {AGE_OUT_S:.0f}s for its errors to age out"
            )
            await asyncio.sleep(AGE_OUT_S)
        handle = await releases.start_release(client, plan, info.task_queue)
        link = ui_link(plan.workflow_id)
        out.print(f"\nrelease {plan.workflow_id} started (run {handle.result_run_id})")
        out.print(f"Temporal UI: [bold]{link}[/]")
        code = await release_commands.follow(client, plan.service)
        out.print(f"\nTemporal UI: {link}")
        out.print(
            "The stack keeps running so you can look around; stop it with"
            f" `rollout dev down --dir {directory}`."
        )
        return code
