"""The plan's models under their earlier module name; each lives in its own module now.

Kept so that scripts written against ``plans.model`` keep importing; new code imports from
``plans``.
"""

from plans.gates import Gate, format_value
from plans.loading import MAX_PLAN_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, load_plan, parse_plan
from plans.notify import Notify
from plans.plan import Plan
from plans.routers import HAProxyRouter, Router
from plans.sources import MetricsSource, PrometheusSource
from plans.stage import Stage
from plans.text import (
    MAX_GATES,
    MAX_PLACEHOLDERS,
    MAX_QUERY_CHARS,
    MAX_STAGES,
    MAX_TEXT_CHARS,
    SAFE_NAME,
)

__all__ = [
    "MAX_GATES",
    "MAX_PLACEHOLDERS",
    "MAX_PLAN_BYTES",
    "MAX_QUERY_CHARS",
    "MAX_STAGES",
    "MAX_TEXT_CHARS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "SAFE_NAME",
    "Gate",
    "HAProxyRouter",
    "MetricsSource",
    "Notify",
    "Plan",
    "PrometheusSource",
    "Router",
    "Stage",
    "format_value",
    "load_plan",
    "parse_plan",
]
