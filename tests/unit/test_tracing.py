"""client.tracing: traces when the OpenTelemetry variables ask, nothing of it otherwise.

Each case runs in a fresh interpreter: OpenTelemetry's tracer provider is set once a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from client.tracing import wanted

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **env},
        check=False,
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_which_variables_ask_for_traces(variables: dict[str, str], expected: bool) -> None:
    assert wanted(variables) is expected


def test_without_the_variables_nothing_of_opentelemetry_is_imported() -> None:
    ran = run(
        "import sys\n"
        "from client.tracing import interceptors\n"
        "from worker.main import span_interceptors\n"
        "assert interceptors('rollout') == [] and span_interceptors() == []\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_the_service_name_is_the_program_unless_the_variables_name_one() -> None:
    code = (
        "from client.tracing import interceptors, tracer_provider\n"
        "from temporalio.contrib.opentelemetry import TracingInterceptor\n"
        "(found,) = interceptors('rollout-worker')\n"
        "assert isinstance(found, TracingInterceptor)\n"
        "print(tracer_provider('x').resource.attributes['service.name'])\n"
    )
    ran = run(code, OTEL_TRACES_EXPORTER="console")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "rollout-worker"
    ran = run(code, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="deployer")
    assert ran.stdout.strip() == "deployer", ran.stderr


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
    """An OTLP/HTTP endpoint that records each request's path, type and size."""
    received: list[tuple[str, str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.path, self.headers.get("Content-Type", ""), len(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_spans_go_to_the_otlp_endpoint_before_the_process_ends(
    collector: tuple[str, list[tuple[str, str, int]]],
) -> None:
    url, received = collector
    # A batch exporter holds spans; end_process (os._exit) must send them first.
    ran = run(
        "from client.connection import end_process\n"
        "from client.tracing import tracer_provider, interceptors\n"
        "interceptors('rollout')\n"
        "with tracer_provider('rollout').get_tracer('t').start_as_current_span('one'):\n"
        "    pass\n"
        "end_process(0)\n",
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
    )
    assert ran.returncode == 0, ran.stderr
    assert [(path, kind) for path, kind, _ in received] == [
        ("/v1/traces", "application/x-protobuf")
    ]
    assert received[0][2] > 0


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER names 'zipkin'"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "needs opentelemetry-exporter-otlp-proto-grpc",
        ),
    ],
)
def test_an_exporter_it_cannot_send_with_is_named(variables: dict[str, str], said: str) -> None:
    ran = run(
        "from client.tracing import TracingUnavailable, check\n"
        "try:\n    check()\nexcept TracingUnavailable as e:\n    print(e)\n",
        **variables,
    )
    assert said in ran.stdout, ran.stderr


def test_the_worker_names_the_extra_when_opentelemetry_is_missing() -> None:
    from tests.unit.test_install import WITHOUT

    ran = run_cli(WITHOUT, "opentelemetry", "worker")
    assert ran.returncode == 2, ran.stderr
    said = " ".join(ran.stderr.split())
    assert "OTEL_EXPORTER_OTLP_ENDPOINT asks for traces" in said
    assert "pip install 'durable-rollouts[otel]'" in said
    assert "Traceback" not in ran.stderr


def test_the_cli_names_the_extra_when_opentelemetry_is_missing() -> None:
    from tests.unit.test_install import WITHOUT

    ran = run_cli(WITHOUT, "opentelemetry", "starter", "list")
    assert ran.returncode == 1, ran.stderr
    said = " ".join(ran.stderr.split())
    assert "pip install 'durable-rollouts[otel]'" in said
    assert "Traceback" not in ran.stderr


def run_cli(without: str, *argv: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {
        **clean,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        # nothing listens there: the program must stop before it connects anywhere
        "TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    return subprocess.run(
        [sys.executable, "-c", without, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_json_is_untouched_by_tracing() -> None:
    # `--json` output stays one JSON document: the console exporter is not the default.
    ran = run(
        "import json, sys\n"
        "from client.tracing import interceptors\n"
        "interceptors('rollout')\n"
        "json.dump({'ok': True}, sys.stdout)\n",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert json.loads(ran.stdout) == {"ok": True}, ran.stderr
