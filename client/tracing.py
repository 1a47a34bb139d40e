"""Traces, when the OpenTelemetry variables ask for them.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER``) set, every client ``connect`` makes carries the SDK's
``TracingInterceptor``: the CLI's calls (start, signal, update, query) become spans, and a
worker made from that client traces the workflows and activities it runs, continuing the
trace of the call that started them. The exporters follow the usual variables
(``OTEL_TRACES_EXPORTER``: ``otlp``, the default, ``console`` or ``none``;
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf``, the default, or ``grpc``; the endpoint,
headers and timeout variables are the exporter's own; ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``). ``OTEL_SDK_DISABLED=true`` turns it all off.

Without those variables nothing of OpenTelemetry is imported. The packages come with the
``otel`` extra; set the variables without it and the program says so instead of starting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plans.errors import RolloutError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

# Any of these set (and OTEL_SDK_DISABLED not true) turns tracing on.
TRACE_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)
EXTRA = "pip install 'durable-rollouts[otel]'"
GRPC_EXPORTER = "opentelemetry-exporter-otlp-proto-grpc"

# The provider this process set up, kept to flush its spans before the process ends.
_provider: TracerProvider | None = None


class TracingUnavailable(RolloutError):
    """The variables ask for traces that this install cannot send."""


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporter_names(environ)
    if exporters is not None:
        return exporters != ["none"]
    return any(environ.get(name, "").strip() for name in TRACE_VARIABLES)


def _exporter_names(environ: Mapping[str, str]) -> list[str] | None:
    value = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not value:
        return None
    return [name.strip() for name in value.split(",") if name.strip()] or None


def interceptors(program: str) -> list[Interceptor]:
    """The client interceptors the environment asks for: the tracing one, or none.

    ``program`` is the spans' ``service.name`` unless OTEL_SERVICE_NAME (or
    OTEL_RESOURCE_ATTRIBUTES) names one. Raises TracingUnavailable when traces are asked
    for and the otel extra (or the exporter asked for) is not installed.
    """
    if not wanted():
        return []
    provider = tracer_provider(program)  # first: it says which package is missing, if any
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("durable-rollouts"))]


def check() -> None:
    """Raise TracingUnavailable now when traces are asked for and cannot be sent."""
    if wanted():
        _exporters()


def tracer_provider(program: str) -> TracerProvider:
    """This process's tracer provider, made once, with the exporters the variables name."""
    global _provider
    if _provider is not None:
        return _provider
    exporters = _exporters()
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: program}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _exporters() -> list[Any]:
    """The span exporters OTEL_TRACES_EXPORTER names (otlp when unset)."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
        import temporalio.contrib.opentelemetry  # noqa: F401
    except ImportError as missing:
        raise TracingUnavailable(
            f"{_asking()} asks for traces, but {missing.name or 'OpenTelemetry'} is not"
            f" installed: {EXTRA}, or unset the variable"
        ) from None
    found = []
    for name in _exporter_names(os.environ) or ["otlp"]:
        if name == "otlp":
            found.append(_otlp())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            found.append(ConsoleSpanExporter())
        elif name != "none":
            raise TracingUnavailable(
                f"OTEL_TRACES_EXPORTER names {name!r}: this program sends traces with otlp or"
                " console (or none)"
            )
    return found


def _otlp() -> Any:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        try:
            # not in the otel extra: installed by those who send gRPC
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise TracingUnavailable(
                f"OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs {GRPC_EXPORTER}: pip install"
                f" {GRPC_EXPORTER}, or send http/protobuf (port 4318) with the otel extra"
            ) from None
        return GrpcExporter()
    if protocol != "http/protobuf":
        raise TracingUnavailable(
            f"OTEL_EXPORTER_OTLP_PROTOCOL is {protocol!r}: http/protobuf or grpc are sent"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingUnavailable(
            f"{_asking()} asks for OTLP traces, but their exporter is not installed: {EXTRA}"
        ) from None
    return OTLPSpanExporter()


def _asking() -> str:
    """The variable that asked for traces, to name it."""
    return next((name for name in TRACE_VARIABLES if os.environ.get(name)), TRACE_VARIABLES[0])


def flush(timeout_s: float = 5.0) -> None:
    """Send the spans still held, before the process ends (it skips interpreter shutdown)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))
