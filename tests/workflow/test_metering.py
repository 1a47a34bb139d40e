"""The rollout's own metrics, as the SDK's metric buffer receives them from a real worker."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from plans import CommandKind, OperatorCommand, RolloutState, TrafficSplit
from starter.operations import send_command, start_rollout
from tests.workflow.conftest import Doubles, make_plan, skip
from tests.workflow.test_rollout_workflow import settle, status_of, until
from workflows import metering
from workflows.rollout import RolloutWorkflow

# What the SDK adds to every workflow metric.
SDK_LABELS = {"namespace", "task_queue", "workflow_type", "service_name"}


async def test_a_rollout_counts_its_checks_drift_commands_and_end(
    env: WorkflowEnvironment, doubles: Doubles
) -> None:
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    metered = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    # The router is found at 0% at the first check (a reload, say): drift, put back.
    doubles.router_reads = [TrafficSplit.canary_percent(0)]
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 5, "bake": "30m", "check_every": "10m", "approval": True},
            {"name": "b", "weight": 100, "bake": "10m", "check_every": "10m"},
        ]
    )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            metered,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
        ):
            handle = await start_rollout(env.client, plan, queue)
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

    counted: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for update in buffer.retrieve_updates():
        labels = tuple(
            sorted((k, str(v)) for k, v in update.attributes.items() if k not in SDK_LABELS)
        )
        key = (update.metric.name, labels)
        if update.metric.name in (metering.CANARY_WEIGHT, metering.GATE_VALUE):
            gauges[key] = float(update.value)
        else:
            counted[key] += int(update.value) if update.metric.name.endswith("_total") else 1
    service = ("service", plan.service)

    def count(name: str, *labels: tuple[str, str]) -> int:
        return counted[(name, tuple(sorted((service, *labels))))]

    assert count(metering.STARTED, ("strategy", "canary")) == 1
    assert count(metering.ENDED, ("outcome", "promoted")) == 1
    assert count(metering.DRIFT) == 1
    assert count(metering.COMMANDS, ("kind", "resume"), ("fate", "refused")) == 1
    assert count(metering.COMMANDS, ("kind", "approve"), ("fate", "accepted")) == 1
    waiting = count(metering.CHECKS, ("state", "awaiting_approval"))
    assert waiting >= 2
    every_check = sum(n for (name, _), n in counted.items() if name == metering.CHECKS)
    assert every_check == checks
    assert count(metering.VERDICTS, ("gate", "error-rate"), ("outcome", "pass")) == checks
    assert count(metering.ROLLBACKS) == 0
    assert gauges[(metering.CANARY_WEIGHT, (service,))] == 100
