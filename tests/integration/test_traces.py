"""Traces from the real programs: `rollout start` and `rollout-worker`, with
OTEL_EXPORTER_OTLP_ENDPOINT set, send OTLP/HTTP spans of one trace to a collector.

On a real dev server. The collector is a local HTTP server that decodes each export with
OpenTelemetry's own protobuf types. The plan's router does not exist: the first shift
fails, which is enough for its span (the attributes are written before the shift runs).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from worker.main import EXIT_STOPPED

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent


class Collector:
    """Each span received: (service.name, span name, trace id, attributes)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: value_of(a.value) for a in span.attributes}
                    with self.lock:
                        self.spans.append(
                            (resource["service.name"], span.name, span.trace_id, attributes)
                        )

    def named(self, name: str) -> list[tuple[str, str, bytes, dict[str, Any]]]:
        with self.lock:
            return [s for s in self.spans if s[1] == name]


def value_of(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture
def collector() -> Iterator[tuple[str, Collector]]:
    found = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/traces":
                found.take(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def server() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        ui=False,
    ) as env:
        yield env


async def test_the_cli_and_the_worker_send_one_trace_of_a_rollout(
    server: WorkflowEnvironment, collector: tuple[str, Collector], tmp_path: Path
) -> None:
    endpoint, found = collector
    queue = f"traces-{uuid.uuid4().hex[:8]}"
    service = f"traced-{uuid.uuid4().hex[:6]}"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TEMPORAL_"))},
        "TEMPORAL_ADDRESS": server.client.service_client.config.target_host,
        "ROLLOUT_TASK_QUEUE": queue,
        "ROLLOUT_NOTIFY_DIR": str(tmp_path / "notices"),
        "ROLLOUT_REPORT_DIR": str(tmp_path / "reports"),
        "ROLLOUT_DIR": str(tmp_path / "stack"),
        "ROLLOUT_WORKER_METRICS": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "service": service,
                "version": "v2",
                "stable": "stable",
                "canary": "canary",
                "router": {
                    "kind": "haproxy",
                    "runtime_api": str(tmp_path / "no-haproxy.sock"),
                    "backend": "app",
                },
                "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9"},
                "gates": [{"name": "errors", "query": "vector(0)", "max": 1}],
                "stages": [{"name": "first", "weight": 10, "bake": "1m", "check_every": "10s"}],
            }
        )
    )
    worker = subprocess.Popen(
        [str(BIN / "rollout-worker")],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    workflow_id = ""
    try:
        assert worker.stderr is not None
        lines: list[str] = []
        while not any("worker polling task queue" in line for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(worker.stderr.readline), 120)
            assert line, "".join(lines)
            lines.append(line)
        started = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "rollout"), "start", str(plan), "--json"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert started.returncode == 0, started.stderr
        workflow_id = f"rollout-{service}"
        # The CLI sent its span before it ended; the worker's come as the shift is tried.
        (start,) = found.named("StartWorkflow:RolloutWorkflow")
        for _ in range(300):
            if found.named("RunActivity:shift_traffic"):
                break
            await asyncio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
        if workflow_id:
            await server.client.get_workflow_handle(workflow_id).terminate("test over")
    assert code == EXIT_STOPPED
    assert start[0] == "rollout" and start[3]["temporalWorkflowID"] == workflow_id
    shifts = found.named("RunActivity:shift_traffic")
    assert shifts, found.spans
    for name, _, trace_id, attributes in shifts:
        assert name == "rollout-worker"
        assert trace_id == start[2]
        assert attributes["rollout.service"] == service
        assert attributes["rollout.stage"] == "first"
        assert attributes["rollout.canary_weight"] == 0  # the weight it moves from
    (run, *_) = found.named("RunWorkflow:RolloutWorkflow")
    assert run[0] == "rollout-worker" and run[2] == start[2]
