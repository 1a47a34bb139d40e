"""Activity doubles for releases: each target's router (its HAProxy backend) kept apart."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.fanout import signal_targets
from activities.identity import verify_command
from plans import (
    ClaimAnswer,
    GateCheck,
    GateOutcome,
    Notification,
    ShiftRequest,
    TargetClaim,
    TrafficSplit,
    Verdict,
)
from plans.governance.freezes import Freeze
from plans.release_plan import ReleasePlan, parse_release_plan
from plans.runtime.checks import CheckRequest, Observation
from plans.runtime.release import ReleaseInput, ReleaseStatus
from plans.runtime.state import ReportRequest
from tests.workflow.conftest import skip, verdicts
from workflows.release import ReleaseWorkflow
from workflows.rollout import RolloutWorkflow

NEW = "canary"  # the new version's server in every target


@dataclass
class FleetDoubles:
    """Routers per backend; the judge sees which backend (target) a check is for."""

    judge: Callable[[str, GateCheck], list[Verdict]] = lambda backend, check: verdicts(
        check, GateOutcome.PASS
    )
    # (backend, the new version's weight) for every shift, in order.
    shifts: list[tuple[str, int]] = field(default_factory=list)
    splits: dict[str, tuple[str, TrafficSplit]] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Backends whose router refuses this many restores (to 0%) before taking one.
    restore_refusals: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # a backend per restore refused

    def new_weight(self, backend: str) -> int:
        """The new version's share of the backend's traffic now."""
        canary, split = self.splits.get(backend, (NEW, TrafficSplit.canary_percent(0)))
        return split.canary_weight if canary == NEW else split.stable_weight

    def weights_of(self, backend: str) -> list[int]:
        return [w for b, w in self.shifts if b == backend]

    def activities(self) -> list[Any]:
        def read(req: ShiftRequest) -> TrafficSplit:
            backend = req.router.backend  # type: ignore[union-attr]
            canary, split = self.splits.get(backend, (NEW, TrafficSplit.canary_percent(0)))
            if canary == req.canary:
                return split
            return TrafficSplit(
                stable_weight=split.canary_weight, canary_weight=split.stable_weight
            )

        @activity.defn(name="shift_traffic")
        def shift_traffic(req: ShiftRequest) -> TrafficSplit:
            backend = req.router.backend  # type: ignore[union-attr]
            with self.lock:
                if req.split.canary_weight == 0 and self.restore_refusals.get(backend, 0) > 0:
                    self.restore_refusals[backend] -= 1
                    self.refused.append(backend)
                    raise RuntimeError(f"the admin API of {backend} is away")
                self.splits[backend] = (req.canary, req.split)
                self.shifts.append((backend, self.new_weight(backend)))
            return req.split

        @activity.defn(name="read_traffic")
        def read_traffic(req: ShiftRequest) -> TrafficSplit:
            return read(req)

        @activity.defn(name="check_gates")
        def check_gates(req: GateCheck) -> list[Verdict]:
            return self.judge(req.placeholders["backend"], req)

        @activity.defn(name="look")
        def look(req: CheckRequest) -> Observation:
            split = read(req.read)
            found = check_gates(req.check) if req.check is not None else []
            return Observation(split=split, verdicts=found)

        @activity.defn(name="notify")
        def notify(req: Notification) -> None:
            self.notes.append(req.text)

        @activity.defn(name="claim_target")
        def claim_target(claim: TargetClaim) -> ClaimAnswer:
            with self.lock:
                self.claims.append(claim.owner)
            return ClaimAnswer(claimed=True, owner=claim.owner)

        @activity.defn(name="release_target")
        def release_target(claim: TargetClaim) -> bool:
            return True

        @activity.defn(name="freezes_for")
        def freezes_for(service: str) -> list[Freeze]:
            return []  # no freeze holds a fleet here

        @activity.defn(name="write_report")
        def write_report(request: ReportRequest) -> str:
            return f"file:///reports/{request.workflow_id}/report.html"

        return [
            signal_targets,  # the real one: it only signals the rollouts, through Temporal
            verify_command,  # the real one: it only runs ssh-keygen
            freezes_for,
            write_report,
            shift_traffic,
            read_traffic,
            check_gates,
            look,
            notify,
            claim_target,
            release_target,
        ]


@asynccontextmanager
async def fleet_worker(env: WorkflowEnvironment, doubles: FleetDoubles) -> AsyncIterator[str]:
    queue = f"fleet-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=16) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RolloutWorkflow, ReleaseWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
        ):
            yield queue


def make_fleet(**overrides: Any) -> ReleasePlan:
    """Four targets in three waves, each its own HAProxy backend named after its region."""
    data: dict[str, Any] = {
        "service": f"svc-{uuid.uuid4().hex[:6]}",
        "version": "v2",
        "stable": "stable",
        "canary": NEW,
        "router": {"kind": "haproxy", "runtime_api": "/tmp/haproxy.sock", "backend": "$region"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": [
            {
                "name": "error-rate",
                "query": 'sum(rate(errors{region="$region",server="$canary"}[1m]))',
                "max": 0.05,
                "failure_limit": 2,
            }
        ],
        "stages": [
            {"name": "canary", "weight": 10, "bake": "1h", "check_every": "10m"},
            {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
        ],
        "targets": {
            name: {"placeholders": {"region": name}}
            for name in ("staging", "eu", "us-west", "us-east")
        },
        "waves": [
            {"targets": ["staging"]},
            {"targets": ["eu"]},
            {"targets": ["us-west", "us-east"], "max_parallel": 2},
        ],
    }
    data.update(overrides)
    return parse_release_plan(data)


async def start(
    client: Client, fleet: ReleasePlan, queue: str, **settings: Any
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        ReleaseWorkflow.run,
        ReleaseInput(fleet=fleet, **settings),
        id=fleet.workflow_id,
        task_queue=queue,
    )


async def release_status(handle: WorkflowHandle[Any, Any]) -> ReleaseStatus:
    answer: ReleaseStatus = await handle.query(ReleaseWorkflow.status)
    return answer


async def until(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[ReleaseStatus], bool],
    step: timedelta = timedelta(minutes=5),
    limit: int = 2000,
) -> ReleaseStatus:
    """Skip time in steps until the release's status satisfies the predicate."""
    current = await release_status(handle)
    for _ in range(limit):
        if predicate(current):
            return current
        await skip(env, step)
        current = await release_status(handle)
    raise AssertionError(f"condition never met; last status {current}")


async def closed(
    env: WorkflowEnvironment, workflow_id: str, step: timedelta = timedelta(minutes=10)
) -> WorkflowExecutionStatus:
    """Skip time until the workflow's latest run closes; its closing status."""
    for _ in range(5000):
        described = await env.client.get_workflow_handle(workflow_id).describe()
        assert described.status is not None
        if described.status != WorkflowExecutionStatus.RUNNING:
            return described.status
        await skip(env, step)
    raise AssertionError(f"{workflow_id} never ended")
