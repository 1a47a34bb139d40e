"""The rollout's service and stage on the spans of its activities, when the worker traces.

The SDK's ``TracingInterceptor`` (``client.tracing``) names a span after the activity and
its workflow's ids. ``RolloutSpans`` adds what an operator looks for in a trace: a rollout's
workflow stamps each activity it starts with its service, stage and canary weight (a header,
read from the workflow's own status), and the activity's side writes them on its span:
``rollout.service``, ``rollout.version``, ``rollout.stage``, ``rollout.stage_index`` and
``rollout.canary_weight`` (the weight when the activity was scheduled: a shift's is the weight
it moves from, its stage the one it moves to). The worker installs it only when it traces
(imported then, with OpenTelemetry).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from temporalio import workflow
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from plans.workflow_ids import ROLLOUT_WORKFLOW

HEADER = "rollout-span"
PREFIX = "rollout."


class RolloutSpans(Interceptor):
    """Worker interceptor: the rollout's service and stage onto its activities' spans."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivitySpans(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowStamps


def attributes_of(workflow_type: str, instance: Any) -> dict[str, str | int]:
    """What a rollout's activities are stamped with now; nothing for other workflows."""
    if workflow_type != ROLLOUT_WORKFLOW:
        return {}
    try:
        status = instance.status()
    except Exception:  # not set up yet (no plan): the activity goes unstamped
        return {}
    return {
        "service": status.service,
        "version": status.version,
        "stage": status.stage_name,
        "stage_index": status.stage_index,
        "canary_weight": status.canary_weight,
    }


class _WorkflowStamps(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_StampingOutbound(outbound))


class _StampingOutbound(WorkflowOutboundInterceptor):
    def _stamped(self, headers: Any) -> Any:
        found = attributes_of(workflow.info().workflow_type, workflow.instance())
        if not found:
            return headers
        return {**headers, HEADER: PayloadConverter.default.to_payload(found)}

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._stamped(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._stamped(input.headers)
        return super().start_local_activity(input)


class _ActivitySpans(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        stamp = input.headers.get(HEADER)
        span = trace.get_current_span()
        if stamp is not None and span.is_recording():
            found = PayloadConverter.default.from_payload(stamp, dict)
            span.set_attributes(
                {
                    f"{PREFIX}{key}": value
                    for key, value in found.items()
                    if isinstance(value, str | int)
                }
            )
        return await super().execute_activity(input)
