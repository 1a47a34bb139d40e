"""Types that cross a boundary: the plan, commands, verdicts, status and result.

This package imports none of the others, so activities, workflows, the worker and
the starter can all depend on it.

The names below are imported when first used, so that a program needing one part (the
CLI validating a plan) does not pay for building every model of the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plans.durations import Duration, format_duration, parse_duration
    from plans.errors import PlanError, RolloutError
    from plans.gates import (
        ComparingGate,
        Gate,
        GateBase,
        RelativeGate,
        SequentialGate,
        StatisticalGate,
        ThresholdGate,
        format_value,
        gate_from,
    )
    from plans.loading import load_plan, parse_plan
    from plans.match import RequestMatch
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
    from plans.runtime.checks import GateCheck
    from plans.runtime.leases import ClaimAnswer, OwnerEnd, TargetClaim
    from plans.runtime.notices import Notice, Notification, StageBrief
    from plans.runtime.state import (
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
    from plans.sources import PRESETS, MetricsSource, PrometheusSource, SourceModel
    from plans.stage import Stage

# Where each public name lives, for __getattr__.
_HOMES: dict[str, str] = {
    "GateCheck": "plans.runtime.checks",
    "Duration": "plans.durations",
    "format_duration": "plans.durations",
    "parse_duration": "plans.durations",
    "PlanError": "plans.errors",
    "RolloutError": "plans.errors",
    "ComparingGate": "plans.gates",
    "Gate": "plans.gates",
    "GateBase": "plans.gates",
    "RelativeGate": "plans.gates",
    "SequentialGate": "plans.gates",
    "StatisticalGate": "plans.gates",
    "ThresholdGate": "plans.gates",
    "format_value": "plans.gates",
    "gate_from": "plans.gates",
    "ClaimAnswer": "plans.runtime.leases",
    "OwnerEnd": "plans.runtime.leases",
    "TargetClaim": "plans.runtime.leases",
    "load_plan": "plans.loading",
    "parse_plan": "plans.loading",
    "RequestMatch": "plans.match",
    "Notice": "plans.runtime.notices",
    "Notification": "plans.runtime.notices",
    "StageBrief": "plans.runtime.notices",
    "AppriseChannel": "plans.notify",
    "Channel": "plans.notify",
    "EventKind": "plans.notify",
    "Notify": "plans.notify",
    "Severity": "plans.notify",
    "Templates": "plans.notify",
    "WebhookChannel": "plans.notify",
    "Plan": "plans.plan",
    "Preset": "plans.presets",
    "EnvoyRouter": "plans.routers",
    "FlagdRouter": "plans.routers",
    "HAProxyRouter": "plans.routers",
    "Router": "plans.routers",
    "RouterModel": "plans.routers",
    "PRESETS": "plans.sources",
    "MetricsSource": "plans.sources",
    "PrometheusSource": "plans.sources",
    "SourceModel": "plans.sources",
    "Stage": "plans.stage",
    "CommandKind": "plans.runtime.state",
    "CommandRecord": "plans.runtime.state",
    "Compensation": "plans.runtime.state",
    "GateAction": "plans.runtime.state",
    "GateOutcome": "plans.runtime.state",
    "OperatorCommand": "plans.runtime.state",
    "RolloutResult": "plans.runtime.state",
    "RolloutState": "plans.runtime.state",
    "RolloutStatus": "plans.runtime.state",
    "ShiftRequest": "plans.runtime.state",
    "TrafficSplit": "plans.runtime.state",
    "Verdict": "plans.runtime.state",
}

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
    "SequentialGate",
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


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, and keep it here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
