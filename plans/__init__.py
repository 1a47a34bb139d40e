"""Types that cross a boundary: the plan, commands, verdicts, status and result.

This package imports none of the others, so activities, workflows, the worker and
the starter can all depend on it.
"""

from plans.durations import Duration, format_duration, parse_duration
from plans.errors import PlanError, RolloutError
from plans.model import (
    Gate,
    HAProxyRouter,
    MetricsSource,
    Notify,
    Plan,
    PrometheusSource,
    Router,
    Stage,
    format_value,
    load_plan,
    parse_plan,
)
from plans.presets import PRESETS, Preset
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
    "ClaimAnswer",
    "CommandKind",
    "CommandRecord",
    "Compensation",
    "Duration",
    "Gate",
    "GateAction",
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
    "RolloutError",
    "RolloutResult",
    "RolloutState",
    "RolloutStatus",
    "Router",
    "ShiftRequest",
    "Stage",
    "TargetClaim",
    "TrafficSplit",
    "Verdict",
    "format_duration",
    "format_value",
    "load_plan",
    "parse_duration",
    "parse_plan",
]
