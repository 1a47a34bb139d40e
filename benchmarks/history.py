"""History cost of a week-long rollout, measured on the time-skipping test server.

Runs the seeds' SAFE plan (5 -> 10 -> 25 -> 50 -> 75 -> 100 over 7 days) with gate checks
every minute, activities replaced by instant doubles, and prints one JSON object:
events per check, events per simulated day, the largest run of the continue-as-new chain
and the wall time.

    .venv/bin/python benchmarks/history.py [--check-every 1m] [--checks-per-run 500]

benchmarks/README.md's table comes from ``.venv/bin/python benchmarks/history.py`` (checks every
minute) and ``.venv/bin/python benchmarks/history.py --check-every 5m``. ``--quick`` checks
every 6 hours and continues as new every 10 checks (28 checks, three runs, about a second):
the same JSON, for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.connection import end_process
from plans import (
    ClaimAnswer,
    GateCheck,
    GateOutcome,
    Notification,
    ShiftRequest,
    TargetClaim,
    TrafficSplit,
    Verdict,
    parse_plan,
)
from plans.runtime.checks import CheckRequest, Observation
from plans.runtime.inputs import RolloutInput
from plans.runtime.state import ReportRequest
from workflows.rollout import RolloutWorkflow

SAFE = [(5, "1d"), (10, "1d"), (25, "1d"), (50, "1d"), (75, "1d"), (100, "2d")]


@activity.defn(name="shift_traffic")
def shift_traffic(req: ShiftRequest) -> TrafficSplit:
    return req.split


@activity.defn(name="read_traffic")
def read_traffic(req: ShiftRequest) -> TrafficSplit:
    return req.split


@activity.defn(name="check_gates")
def check_gates(req: GateCheck) -> list[Verdict]:
    now = datetime.now(UTC)
    return [
        Verdict(gate=g.name, outcome=GateOutcome.PASS, value=0.001, threshold="<= 0.01", at=now)
        for g in req.gates
    ]


@activity.defn(name="look")
def look(req: CheckRequest) -> Observation:
    verdicts = check_gates(req.check) if req.check is not None else []
    return Observation(split=req.read.split, verdicts=verdicts)


@activity.defn(name="notify")
def notify(req: Notification) -> None:
    return None


@activity.defn(name="claim_target")
def claim_target(claim: TargetClaim) -> ClaimAnswer:
    return ClaimAnswer(claimed=True, owner=claim.owner)


@activity.defn(name="release_target")
def release_target(claim: TargetClaim) -> bool:
    return True


@activity.defn(name="freezes_for")
def freezes_for(service: str) -> list[Any]:
    return []


@activity.defn(name="write_report")
def write_report(request: ReportRequest) -> str:
    return f"file:///reports/{request.workflow_id}/report.html"


ACTIVITIES: list[Callable[..., Any]] = [
    shift_traffic,
    read_traffic,
    check_gates,
    look,
    notify,
    claim_target,
    release_target,
    freezes_for,
    write_report,
]


def safe_plan(check_every: str) -> Any:
    return parse_plan(
        {
            "service": "history-bench",
            "stable": "stable",
            "canary": "canary",
            "router": {"kind": "haproxy", "runtime_api": "/tmp/bench.sock", "backend": "app"},
            "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
            "gates": [{"name": "error-rate", "query": 'errors{server="$canary"}', "max": 0.01}],
            "stages": [
                {"name": f"canary-{w}", "weight": w, "bake": bake, "check_every": check_every}
                for w, bake in SAFE
            ],
        }
    )


async def chain_counts(client: Client, workflow_id: str, run_id: str | None) -> list[int]:
    counts = []
    while run_id:
        events = [
            e
            async for e in client.get_workflow_handle(
                workflow_id, run_id=run_id
            ).fetch_history_events()
        ]
        counts.append(len(events))
        last = events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return counts


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check-every", default="1m")
    parser.add_argument("--checks-per-run", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="--check-every 6h --checks-per-run 10")
    args = parser.parse_args()
    if args.quick:
        args.check_every, args.checks_per_run = "6h", 10
    server = Path(sys.executable).parent / "temporal-test-server"
    plan = safe_plan(args.check_every)
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(server)
    ) as env:
        with ThreadPoolExecutor(4) as executor:
            async with Worker(
                env.client,
                task_queue="history-bench",
                workflows=[RolloutWorkflow],
                activities=ACTIVITIES,
                activity_executor=executor,
            ):
                started = time.perf_counter()
                handle = await env.client.start_workflow(
                    RolloutWorkflow.run,
                    RolloutInput(plan=plan, checks_per_run=args.checks_per_run),
                    id=plan.workflow_id,
                    task_queue="history-bench",
                )
                await handle.result()
                wall = time.perf_counter() - started
                counts = await chain_counts(env.client, handle.id, handle.first_execution_run_id)
    checks = sum(
        int(plan.stages[i].bake.total_seconds() // plan.stages[i].check_every.total_seconds())
        for i in range(len(plan.stages))
    )
    days = plan.total_bake().total_seconds() / 86400
    print(
        json.dumps(
            {
                "plan": "SAFE 7-day: 5/10/25/50/75/100%",
                "check_every": args.check_every,
                "checks": checks,
                "runs": len(counts),
                "events_total": sum(counts),
                "events_per_check": round(sum(counts) / checks, 3),
                "events_per_day": round(sum(counts) / days),
                "max_events_per_run": max(counts),
                "checks_per_run": args.checks_per_run,
                "wall_s": round(wall, 1),
                "ms_per_check": round(1000 * wall / checks, 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)
