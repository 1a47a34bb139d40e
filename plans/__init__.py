"""Types that cross a boundary: the plan, commands, verdicts, status and result.

This package imports none of the others, so activities, workflows, the worker and
the starter can all depend on it.
"""

from plans.durations import Duration, format_duration, parse_duration
from plans.errors import PlanError, RolloutError
from plans.gates import (
    ComparingGate,
    Gate,
    GateBase,
    RelativeGate,
    StatisticalGate,
    ThresholdGate,
    format_value,
    gate_from,
)
from plans.loading import load_plan, parse_plan
from plans.match import RequestMatch
from plans.notify import Channel, Notify, WebhookChannel
from plans.plan import Plan
from plans.presets import Preset
from plans.routers import EnvoyRouter, FlagdRouter, HAProxyRouter, Router, RouterModel
from plans.sources import PRESETS, MetricsSource, PrometheusSource, SourceModel
from plans.stage import Stage
from plans.state import (
    ClaimAnswer,
    CommandKind,
    CommandRecord,
    Compensation,
    GateAction,
    GateCheck,
    GateOutcome,
    Notification,
    OperatorCommand,
    RolloutResult,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    TargetClaim,
    TrafficSplit,
    Verdict,
)

__all__ = [
    "PRESETS",
    "Channel",
    "ClaimAnswer",
    "CommandKind",
    "CommandRecord",
    "ComparingGate",
    "Compensation",
    "Duration",
    "EnvoyRouter",
    "FlagdRouter",
    "Gate",
    "GateAction",
    "GateBase",
    "GateCheck",
    "GateOutcome",
    "HAProxyRouter",
    "MetricsSource",
    "Notification",
    "Notify",
    "OperatorCommand",
    "Plan",
    "PlanError",
    "Preset",
    "PrometheusSource",
    "RelativeGate",
    "RequestMatch",
    "RolloutError",
    "RolloutResult",
    "RolloutState",
    "RolloutStatus",
    "Router",
    "RouterModel",
    "ShiftRequest",
    "SourceModel",
    "Stage",
    "StatisticalGate",
    "TargetClaim",
    "ThresholdGate",
    "TrafficSplit",
    "Verdict",
    "WebhookChannel",
    "format_duration",
    "format_value",
    "gate_from",
    "load_plan",
    "parse_duration",
    "parse_plan",
]
