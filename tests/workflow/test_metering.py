"""The rollout's own metrics, as the SDK's metric buffer receives them from a real worker."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.operations import send_command, start_rollout
from plans import (
    CommandKind,
    GateOutcome,
    OperatorCommand,
    RolloutState,
    TrafficSplit,
)
from plans.runtime import metric_names
from tests.workflow.conftest import Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, status_of, until
from workflows.rollout import RolloutWorkflow
from workflows.rollout.target import RESTORE_ATTEMPTS_BEFORE_ALERT

# What the SDK adds to every workflow metric.
SDK_LABELS = {"namespace", "task_queue", "workflow_type", "service_name"}
Key = tuple[str, tuple[tuple[str, str], ...]]


class Metered:
    """A worker whose client's runtime keeps every metric update in a buffer."""

    def __init__(self, buffer: MetricBuffer, queue: str) -> None:
        self.buffer, self.queue = buffer, queue
        self.counted: Counter[Key] = Counter()
        self.gauges: dict[Key, float] = {}

    def read(self) -> None:
        """Sum the counters' updates, count the histograms' records, keep the gauges' last."""
        for update in self.buffer.retrieve_updates():
            labels = tuple(
                sorted((k, str(v)) for k, v in update.attributes.items() if k not in SDK_LABELS)
            )
            key, name = (update.metric.name, labels), update.metric.name
            if name in (metric_names.CANARY_WEIGHT, metric_names.GATE_VALUE):
                self.gauges[key] = float(update.value)
            else:
                self.counted[key] += int(update.value) if name.endswith("_total") else 1

    def count(self, name: str, service: str, *labels: tuple[str, str]) -> int:
        return self.counted[(name, tuple(sorted((("service", service), *labels))))]


@pytest.fixture
async def metered(env: WorkflowEnvironment, doubles: Doubles) -> AsyncIterator[Metered]:
    buffer = MetricBuffer(10_000)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
    )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
        ):
            yield Metered(buffer, queue)


async def test_a_rollout_counts_its_checks_drift_commands_and_end(
    env: WorkflowEnvironment, doubles: Doubles, metered: Metered
) -> None:
    # The router is found at 0% at the first check (a reload, say): drift, put back.
    doubles.router_reads = [TrafficSplit.canary_percent(0)]
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 5, "bake": "30m", "check_every": "10m", "approval": True},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    handle = await start_rollout(env.client, plan, metered.queue)
    await until(handle, lambda s: s.state == RolloutState.AWAITING_APPROVAL, env)
    await skip(env, timedelta(minutes=25))
    # A signal the rollout refuses (it is not paused) is recorded, and counted.
    await handle.signal("resume", {"by": "lee", "reason": "go on"})
    await until(handle, lambda s: len(s.commands) == 1, env)
    approve = OperatorCommand(kind=CommandKind.APPROVE, by="lee")
    assert (await send_command(env.client, plan.service, approve)).accepted
    result = await settle(env, handle)
    checks = (await status_of(handle)).checks
    assert result.state == RolloutState.PROMOTED

    metered.read()
    service = plan.service
    assert metered.count(metric_names.STARTED, service, ("strategy", "canary")) == 1
    assert metered.count(metric_names.ENDED, service, ("outcome", "promoted")) == 1
    assert metered.count(metric_names.DRIFT, service) == 1
    assert (
        metered.count(metric_names.COMMANDS, service, ("kind", "resume"), ("fate", "refused")) == 1
    )
    assert (
        metered.count(metric_names.COMMANDS, service, ("kind", "approve"), ("fate", "accepted"))
        == 1
    )
    assert metered.count(metric_names.CHECKS, service, ("state", "awaiting_approval")) >= 2
    every_check = sum(n for (name, _), n in metered.counted.items() if name == metric_names.CHECKS)
    assert every_check == checks
    passed = (("gate", "error-rate"), ("outcome", "pass"))
    assert metered.count(metric_names.VERDICTS, service, *passed) == checks
    assert metered.count(metric_names.ROLLBACKS, service) == 0
    assert metered.gauges[(metric_names.CANARY_WEIGHT, (("service", service),))] == 100


async def test_a_rollback_counts_its_failing_gate_restore_failures_and_time_to_restore(
    env: WorkflowEnvironment, doubles: Doubles, metered: Metered
) -> None:
    plan = make_plan()
    handle = await start_rollout(env.client, plan, metered.queue)
    await until(handle, lambda s: s.canary_weight == 25, env)
    # The gate fails from now on, and the router refuses the first restore's attempts.
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.FAIL, 0.5)
    doubles.shift_failures = RESTORE_ATTEMPTS_BEFORE_ALERT
    await rolled_back(env, handle)
    assert doubles.shifts == [5, 25, 0]

    metered.read()
    service = plan.service
    assert metered.count(metric_names.ROLLBACKS, service) == 1
    assert metered.count(metric_names.RESTORE_FAILURES, service) == 1
    assert metered.count(metric_names.RESTORE_SECONDS, service) == 1
    assert metered.count(metric_names.ENDED, service, ("outcome", "rolled_back")) == 1
    failed = (("gate", "error-rate"), ("outcome", "fail"))
    assert metered.count(metric_names.VERDICTS, service, *failed) == 3  # the plan's failure_limit
    assert metered.gauges[(metric_names.CANARY_WEIGHT, (("service", service),))] == 0
