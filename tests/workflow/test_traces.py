"""A traced rollout: the client's, the workflow's and the activities' spans in one trace, with
the rollout's service and stage on the activities' (OpenTelemetry's in-memory exporter)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.operations import start_rollout
from plans import RolloutState
from tests.workflow.conftest import Doubles, make_plan
from tests.workflow.test_rollout_workflow import settle
from worker.tracing import RolloutSpans
from workflows.rollout import RolloutWorkflow


def traced(env: WorkflowEnvironment) -> tuple[Client, InMemorySpanExporter]:
    """The test server's client with the SDK's tracing interceptor, its spans kept."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    interceptor = TracingInterceptor(provider.get_tracer("tests"))
    return Client(**{**env.client.config(), "interceptors": [interceptor]}), exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_rollout_is_one_trace_with_its_service_and_stages(
    env: WorkflowEnvironment, doubles: Doubles
) -> None:
    client, exporter = traced(env)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    plan = make_plan(
        stages=[
            {"name": "alpha", "weight": 10, "bake": "2h", "check_every": "1h"},
            {"name": "full", "weight": 100, "bake": "1h", "check_every": "1h"},
        ]
    )
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[RolloutWorkflow],
            activities=doubles.activities(),
            activity_executor=executor,
            interceptors=[RolloutSpans()],
        ):
            handle = await start_rollout(client, plan, queue)
            result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    spans = exporter.get_finished_spans()

    (start,) = named(spans, "StartWorkflow:RolloutWorkflow")
    assert start.attributes is not None
    assert start.attributes["temporalWorkflowID"] == handle.id
    runs = named(spans, "RunWorkflow:RolloutWorkflow")
    assert runs
    shifts = named(spans, "RunActivity:shift_traffic")
    checks = named(spans, "RunActivity:look")
    assert len(shifts) == 2 and len(checks) == doubles.reads
    # One trace, from the CLI's start down to each activity.
    assert {s.context.trace_id for s in (start, *runs, *shifts, *checks)} == {
        start.context.trace_id
    }
    for span in (*shifts, *checks):
        assert span.attributes is not None
        assert span.attributes["rollout.service"] == plan.service
        assert span.attributes["rollout.version"] == "v2"
        assert span.attributes["temporalWorkflowID"] == handle.id
    # Each shift is stamped with the stage it moves to, each check with the stage it judges.
    assert [(s.attributes or {}).get("rollout.stage") for s in shifts] == ["alpha", "full"]
    assert [(s.attributes or {}).get("rollout.stage_index") for s in shifts] == [0, 1]
    assert [(s.attributes or {}).get("rollout.canary_weight") for s in shifts] == [0, 10]
    stamps = [
        (a["rollout.stage_index"], a["rollout.stage"], a["rollout.canary_weight"])
        for a in (s.attributes or {} for s in sorted(checks, key=lambda s: s.start_time or 0))
    ]
    assert stamps == sorted(stamps)
    assert set(stamps) == {(0, "alpha", 10), (1, "full", 100)}
