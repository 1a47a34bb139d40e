"""Two workers on one task queue, one killed with SIGKILL mid-bake; prints one JSON object.

On the dev stack's Temporal server and Prometheus: an HAProxy of its own with one backend
per rollout (each rollout owns its target), and two ``python -m worker`` processes polling
one task queue. Worker A starts first and runs the first half of the rollouts until each
has checked once; then worker B starts and the second half begins. Every rollout has three
stages (20%, 50%, 100%) and a real error-rate gate checked every ``--every`` seconds. Once
every rollout bakes its second stage, A is killed with SIGKILL. The rollouts A held go on
on B (after the server gives up on A's sticky queue) and every rollout must be promoted,
each shift scheduled once and in order, each stage started and passed once.

From the histories: the longest gap between two checks of one rollout (a check is the
``look`` local activity's marker), over the rollouts A held and over the others, and which
worker completed each workflow task after the kill.

    .venv/bin/python benchmarks/scale_out.py [--rollouts 50] [--bake 20] [--every 1]
        [--dir DIR]

benchmarks/README.md's figures come from ``.venv/bin/python benchmarks/scale_out.py`` (the defaults;
the earlier run with Temporal's 10 s sticky timeout from ``ROLLOUT_STICKY_TIMEOUT=10
.venv/bin/python benchmarks/scale_out.py``). ``--quick`` runs 2 rollouts with 3 s bakes on
a stack on free ports, the workers' sticky timeout at 2 s (unless ROLLOUT_STICKY_TIMEOUT
says otherwise) so the killed worker's rollouts move within seconds: the same JSON, for the
tests, not for the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.scale import gather_limited, start_fleet_haproxy, start_worker, started  # noqa: E402

LOOK = "look"


@dataclass
class RolloutSeen:
    """One rollout as its history and its status tell it."""

    workflow_id: str
    state: str
    shifts: list[int]
    stage_events: list[str]
    expected_stage_events: list[str]
    check_times: list[datetime]
    held_by_killed: bool
    identities_after_kill: set[str] = field(default_factory=set)

    @property
    def longest_gap_s(self) -> float:
        times = self.check_times
        return max(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=0.0)

    @property
    def correct(self) -> bool:
        return (
            self.state == "promoted"
            and self.shifts == [20, 50, 100]
            and self.stage_events == self.expected_stage_events
        )


def stages(bake_s: float, every_s: float) -> list[dict[str, Any]]:
    check = f"{every_s:g}s"
    return [
        {"name": "twenty", "weight": 20, "bake": f"{bake_s:g}s", "check_every": check},
        {"name": "half", "weight": 50, "bake": f"{bake_s:g}s", "check_every": check},
        {
            "name": "all",
            "weight": 100,
            "bake": f"{max(bake_s / 2, 3 * every_s, 3):g}s",
            "check_every": check,
        },
    ]


def plan_for(
    stack: Any, service: str, runtime_api: str, backend: str, bake_s: float, every_s: float
) -> Any:
    from plans import parse_plan
    from tests.stack_plans import error_rate_plan

    # The fleet's backends carry no traffic: the gate judges the 5xx share of the dev stack's
    # backend, which the load generator keeps busy, so every check has a value to judge.
    responses = f'haproxy_server_http_responses_total{{proxy="{stack.haproxy_backend}"'
    query = f'sum(rate({responses},code="5xx"}}[3s])) / sum(rate({responses}}}[3s]))'
    data = error_rate_plan(
        stack, service, stages(bake_s, every_s), window="3s", query=query, inconclusive_limit=1000
    )
    data["router"] = {"kind": "haproxy", "runtime_api": runtime_api, "backend": backend}
    return parse_plan(data)


def identity(pid: int) -> str:
    """The identity a worker process reports to the server (the SDK's default)."""
    return f"{pid}@{socket.gethostname()}"


def kill9(pid: int) -> None:
    """SIGKILL the worker's whole process group and wait until it is gone."""
    from devstack.processes import pid_alive

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        raise RuntimeError(f"the worker (pid {pid}) survived SIGKILL")


async def until_all(client: Any, ids: list[str], ready: Any, timeout: float, what: str) -> None:
    """Poll every rollout's status until ``ready(status)`` holds for all of them."""
    from workflows.rollout import RolloutWorkflow

    waiting = list(ids)
    deadline = time.monotonic() + timeout
    while waiting:
        answers = await gather_limited(
            [client.get_workflow_handle(i).query(RolloutWorkflow.status) for i in waiting]
        )
        waiting = [i for i, s in zip(waiting, answers, strict=True) if not ready(s)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} rollout(s) not {what} after {timeout:g}s")
        await asyncio.sleep(0.5)


async def seen(client: Any, plan: Any, killed: str, killed_at: datetime) -> RolloutSeen:
    """Read one ended rollout back: its shifts, stage events, checks and who ran what."""
    from temporalio.api.enums.v1 import EventType

    from client import operations
    from tests.faults.chaos import expected_stage_events, scheduled_shifts, stage_events

    history = await client.get_workflow_handle(plan.workflow_id).fetch_history()
    checks: list[datetime] = []
    before: list[str] = []
    after: set[str] = set()
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            with contextlib.suppress(KeyError, IndexError, ValueError):
                data = json.loads(details["data"].payloads[0].data)
                if data.get("activity_type") == LOOK:
                    checks.append(at)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            # Completed, not started: the server may still hand a task to a poll of the
            # killed worker that was open when it died; that task times out, unrun.
            who = event.workflow_task_completed_event_attributes.identity
            (before.append(who) if at < killed_at else after.add(who))
    status = await operations.status(client, plan.service)
    return RolloutSeen(
        workflow_id=plan.workflow_id,
        state=status.state.value,
        shifts=await scheduled_shifts(client, plan.workflow_id),
        stage_events=stage_events(status),
        expected_stage_events=expected_stage_events(plan),
        check_times=checks,
        held_by_killed=bool(before) and before[-1] == killed,
        identities_after_kill=after,
    )


async def scale_out(
    stack: Any, client: Any, count: int, bake_s: float, every_s: float, logs: Path
) -> dict[str, Any]:
    """Run the scenario on ``stack``; the measurement, with every rollout as it was seen."""
    from client import operations
    from devstack.processes import free_port, stop_all

    queue = f"scale-out-{uuid.uuid4().hex[:6]}"
    fleet_pid, runtime_api = start_fleet_haproxy(stack, count, logs)
    pids: dict[str, int] = {}
    handles: list[Any] = []
    try:
        plans = [
            plan_for(stack, f"out-{i}-{queue[-6:]}", runtime_api, f"fleet{i}", bake_s, every_s)
            for i in range(count)
        ]

        async def start(batch: list[Any]) -> None:
            async def one(plan: Any) -> Any:
                return await started(
                    client, plan.workflow_id, lambda: operations.start_rollout(client, plan, queue)
                )

            handles.extend(await gather_limited([one(p) for p in batch]))

        half = count // 2
        pids["worker-a"] = start_worker(stack, "ours", queue, logs / f"{queue}-a.log", free_port())
        await start(plans[:half])
        # Worker A alone has run them, so they are in its cache when B starts to poll.
        first = [p.workflow_id for p in plans[:half]]
        await until_all(client, first, lambda s: s.checks >= 1, timeout=120, what="checked")
        pids["worker-b"] = start_worker(stack, "ours", queue, logs / f"{queue}-b.log", free_port())
        await start(plans[half:])
        ids = [p.workflow_id for p in plans]
        await until_all(
            client,
            ids,
            lambda s: s.stage_index == 1 and s.bake_elapsed_s >= every_s,
            timeout=bake_s * 3 + 120,
            what="baking their second stage",
        )
        killed = identity(pids["worker-a"])
        kill9(pids.pop("worker-a"))
        killed_at = datetime.now(UTC)  # once it is gone: nothing it completed comes after
        began = time.monotonic()
        results = await gather_limited(
            [asyncio.wait_for(h.result(), timeout=bake_s * 4 + 180) for h in handles]
        )
        all_done_s = time.monotonic() - began
        del results
        rollouts = await gather_limited([seen(client, p, killed, killed_at) for p in plans])
    finally:
        await gather_limited([ended(h) for h in handles])
        stop_all({**pids, "fleet-haproxy": fleet_pid})
    return summary(rollouts, every_s, bake_s, all_done_s)


async def ended(handle: Any) -> None:
    """Terminate a rollout the run left running; one that ended already is left alone."""
    from temporalio.service import RPCError

    with contextlib.suppress(RPCError):
        await handle.terminate("scale-out over")


def summary(
    rollouts: list[RolloutSeen], every_s: float, bake_s: float, all_done_s: float
) -> dict[str, Any]:
    moved = [r for r in rollouts if r.held_by_killed]
    stayed = [r for r in rollouts if not r.held_by_killed]

    def longest(group: list[RolloutSeen]) -> float | None:
        return round(max(r.longest_gap_s for r in group), 2) if group else None

    def median(group: list[RolloutSeen]) -> float | None:
        gaps = sorted(r.longest_gap_s for r in group)
        return round(gaps[len(gaps) // 2], 2) if gaps else None

    return {
        "rollouts": len(rollouts),
        "every_s": every_s,
        "bake_s": bake_s,
        "held_by_killed_worker": len(moved),
        "correct": sum(r.correct for r in rollouts),
        "promoted": sum(r.state == "promoted" for r in rollouts),
        "longest_check_gap_s": longest(rollouts),
        "longest_check_gap_moved_s": longest(moved),
        "median_longest_gap_moved_s": median(moved),
        "longest_check_gap_stayed_s": longest(stayed),
        "workers_after_kill": sorted({w for r in rollouts for w in r.identities_after_kill}),
        "all_ended_after_kill_s": round(all_done_s, 1),
        "wrong": [
            {"id": r.workflow_id, "state": r.state, "shifts": r.shifts}
            for r in rollouts
            if not r.correct
        ],
    }


async def measure(stack: Any, count: int, bake_s: float, every_s: float) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    client = await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )
    return await scale_out(stack, client, count, bake_s, every_s, Path(stack.dir) / "logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=50)
    parser.add_argument("--bake", type=float, default=20.0, help="seconds each stage bakes")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--dir", help="an existing dev stack's folder (default: a fresh one)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--rollouts 2 --bake 3, free ports, the workers' sticky timeout 2 s",
    )
    args = parser.parse_args()
    if args.quick:
        args.rollouts, args.bake, args.every = 2, 3.0, 1.0
        # The workers this process starts read it from its environment.
        os.environ.setdefault("ROLLOUT_STICKY_TIMEOUT", "2")
    import shutil

    import devstack
    from benchmarks.reaction import machine
    from client.connection import end_process
    from devstack.processes import signals_interrupt
    from tests.stack.conftest import ANY_PORTS

    own = not args.dir
    directory = Path(args.dir or tempfile.mkdtemp(prefix="scale-out-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(signals_interrupt())
        if own:
            cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
            ports = ANY_PORTS if args.quick else None
            stack = cleanup.enter_context(
                devstack.running(directory, with_worker=False, ports=ports)
            )
        else:
            stack = devstack.load(directory)
        result = asyncio.run(measure(stack, args.rollouts, args.bake, args.every))
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
