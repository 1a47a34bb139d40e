"""Types that cross a boundary: the plan, commands, verdicts, status and result.

This package imports none of the others, so activities, workflows, the worker and
the starter can all depend on it.
"""

from plans.checks import GateCheck
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
from plans.leases import ClaimAnswer, OwnerEnd, TargetClaim
from plans.loading import load_plan, parse_plan
from plans.match import RequestMatch
from plans.notices import Notice, Notification, StageBrief
from plans.notify import (
    AppriseChannel,
    Channel,
    EventKind,
    Notify,
    Severity,
    Templates,
    WebhookChannel,
)
from plans.plan import Plan
from plans.presets import Preset
from plans.routers import EnvoyRouter, FlagdRouter, HAProxyRouter, Router, RouterModel
from plans.sources import PRESETS, MetricsSource, PrometheusSource, SourceModel
from plans.stage import Stage
from plans.state import (
    CommandKind,
    CommandRecord,
    Compensation,
    GateAction,
    GateOutcome,
    OperatorCommand,
    RolloutResult,
    RolloutState,
    RolloutStatus,
    ShiftRequest,
    TrafficSplit,
    Verdict,
)

__all__ = [
    "PRESETS",
    "AppriseChannel",
    "Channel",
    "ClaimAnswer",
    "CommandKind",
    "CommandRecord",
    "ComparingGate",
    "Compensation",
    "Duration",
    "EnvoyRouter",
    "EventKind",
    "FlagdRouter",
    "Gate",
    "GateAction",
    "GateBase",
    "GateCheck",
    "GateOutcome",
    "HAProxyRouter",
    "MetricsSource",
    "Notice",
    "Notification",
    "Notify",
    "OperatorCommand",
    "OwnerEnd",
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
    "Severity",
    "ShiftRequest",
    "SourceModel",
    "Stage",
    "StageBrief",
    "StatisticalGate",
    "TargetClaim",
    "Templates",
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
