"""Plan templates from the field: SAFE, FAST, INSTANT and the hot-fix ladders, as data.

A template is the ``gates`` and ``stages`` of a plan; the rest (service, servers, router,
metrics) is the user's. ``rollout init`` writes one out as a commented plan to edit, and a
plan may say ``template: safe`` and write only what it changes: each top-level field it
writes replaces the template's whole field (``stages:`` replaces the whole ladder,
``gates:`` every gate).

Where the numbers come from: SAFE is the 7-day progressive rollout 0 -> 5 -> 10 -> 25 -> 50
-> 75 -> 100 (a day per step, then 48 hours watched at 100%), FAST the same ladder over 3
days, INSTANT all traffic at once watched for 1 minute. They roll back on an error rate
above 1% or a response time above 500 ms, sustained for 5 minutes, and the last step to
100% waits for a person's approval (SAFE, FAST). The hot-fix ladders go 10 -> 50 -> 100 with
10 (P0), 15 (P1) or 30 (P2) minutes a phase and 30 minutes watched at 100%; they roll back
on an error rate above 2%, a canary worse than the version it fixes, or a response time
twice the stable's. IMPROVE is for a change meant to fail less (the "error rate -15%
target" of a fix): 10 -> 50 -> 100, each stage passing only once the canary's error rate
is shown lower than the stable's by that much.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from plans.durations import format_duration, parse_duration

# A part of a template: the comment ``rollout init`` writes above it, and the plan's data.
Part = tuple[str, dict[str, Any]]

# The templates' gates read HAProxy's exporter; other routers read their own metrics. Envoy
# has a latency histogram, so its response-time gates judge the p95 rather than an average.
# A flag's metrics are the application's own: no preset can know their names, so a flag's
# plan starts from the demo service's (counted per variant), for the user to repoint.
ROUTER_PRESETS: dict[str, dict[str, str]] = {
    "haproxy": {},
    "envoy": {
        "haproxy-error-rate": "envoy-error-rate",
        "haproxy-response-time": "envoy-p95-latency",
    },
    "flagd": {
        "haproxy-error-rate": "demo-error-rate",
        "haproxy-response-time": "demo-p95-latency",
    },
}


@dataclass(frozen=True)
class Template:
    """The gates and stages of a kind of rollout, each with a line saying why it is so."""

    name: str
    summary: str
    gates: tuple[Part, ...]
    stages: tuple[Part, ...]

    def fields(self, router: str | None = None) -> dict[str, Any]:
        """The plan fields this template gives, as fresh data a plan may override."""
        return {
            "gates": [copy.deepcopy(gate) for _, gate in self.gates_for(router)],
            "stages": [copy.deepcopy(stage) for _, stage in self.stages],
        }

    def gates_for(self, router: str | None) -> tuple[Part, ...]:
        """The gates on this router's own metrics (HAProxy's exporter unless it says else)."""
        presets = ROUTER_PRESETS.get(router or "haproxy")
        if presets is None:
            return self.gates
        gates = []
        for why, gate in self.gates:
            gate = {**gate, "preset": presets.get(gate["preset"], gate["preset"])}
            kept = [line for line in why.splitlines() if "HAProxy's own average" not in line]
            why = "\n".join(kept)
            if "p95" in gate["preset"]:
                why = why.replace("average response time", "p95 response time")
            gates.append((why, gate))
        return tuple(gates)

    def total_bake(self) -> timedelta:
        """How long the stages bake end to end (approvals and pauses not counted)."""
        return sum((parse_duration(s["bake"]) for _, s in self.stages), timedelta())


# -- gates ---------------------------------------------------------------------------------
# HAProxy's exporter gives each server's 5xx share and its average response time (HAProxy
# has no latency histogram): a service exporting one can swap in its p95 query.

_SUSTAINED = {"window": "5m", "failure_limit": 2}  # two 5-minute windows in a row


def _error_rate(max_ratio: float, **policy: Any) -> Part:
    why = f"roll back when more than {max_ratio:.0%} of the canary's answers are 5xx"
    return why, {"name": "error-rate", "preset": "haproxy-error-rate", "max": max_ratio, **policy}


def _error_rate_vs_stable(**rule: Any) -> Part:
    why = (
        "roll back as soon as the canary is shown to fail more often than the stable beside"
        " it allows\n(a sequential test on everything since the stage began, valid at every"
        " check)"
    )
    gate = {"name": "error-rate-vs-stable", "preset": "haproxy-error-rate", "kind": "sequential"}
    return why, {**gate, **rule}


def _response_time(max_s: float, **policy: Any) -> Part:
    why = (
        f"roll back when the canary's average response time passes {max_s * 1000:g}ms\n"
        "(HAProxy's own average: a service with a latency histogram can gate its p95)"
    )
    gate = {"name": "response-time", "preset": "haproxy-response-time", "max": max_s}
    return why, {**gate, **policy}


def _response_time_vs_stable(factor: float, **policy: Any) -> Part:
    why = f"roll back when the canary answers more than {factor:g}x slower than the stable"
    gate = {
        "name": "response-time-vs-stable",
        "preset": "haproxy-response-time",
        "kind": "relative",
        "factor": factor,
        "margin": 0,
    }
    return why, {**gate, **policy}


def _errors_shown_lower(percent: int) -> Part:
    why = (
        f"pass a stage only once the canary's error rate is shown {percent}% below the"
        " stable's\n(valid at every check: the stage waits for it and pauses when its bake"
        " ends without it;\na canary worse than the stable allows still rolls back)"
    )
    gate = {"name": "error-rate-down", "preset": "haproxy-error-rate", "kind": "sequential"}
    return why, {**gate, "direction": "improve", "by": f"{percent}%"}


_GRADUAL_GATES = (
    _error_rate(0.01, **_SUSTAINED),
    _error_rate_vs_stable(),
    _response_time(0.5, **_SUSTAINED),
)
_FULL_GATES = ["error-rate", "response-time"]  # no stable to compare with at 100%

# -- stages --------------------------------------------------------------------------------


def _ladder(bakes: list[str], check_every: str, approve_last_step: bool) -> tuple[Part, ...]:
    """5 -> 10 -> 25 -> 50 -> 75 -> 100, each baking its own time."""
    parts: list[Part] = []
    weights = [5, 10, 25, 50, 75, 100]
    for weight, bake in zip(weights, bakes, strict=True):
        stage: dict[str, Any] = {
            "name": f"canary-{weight}" if weight < 100 else "full",
            "weight": weight,
            "bake": bake,
            "check_every": check_every,
        }
        why = f"{weight}% of traffic for {bake}"
        if weight == 100:
            stage["gates"] = list(_FULL_GATES)
            why = f"everyone on the new version, watched for {bake} before the rollout ends"
        elif weight == 75 and approve_last_step:
            stage["approval"] = True
            why += ", then wait for `rollout approve` before going to 100%"
        parts.append((why, stage))
    return tuple(parts)


def _hotfix(severity: str, phase_minutes: int) -> Template:
    phase = f"{phase_minutes}m"
    policy = {"window": "2m", "failure_limit": 2}
    return Template(
        name=f"hotfix-{severity}",
        summary=(
            f"{severity.upper()} hot-fix: 10% -> 50% -> 100%, {phase_minutes} minutes a phase,"
            " 30 minutes watched at 100%"
        ),
        gates=(
            _error_rate(0.02, **policy),
            _error_rate_vs_stable(factor=1.0, margin=0.001),
            _response_time_vs_stable(2.0, **policy),
        ),
        stages=(
            (
                f"canary: 10% of traffic for {phase_minutes} minutes",
                {"name": "canary-10", "weight": 10, "bake": phase, "check_every": "1m"},
            ),
            (
                f"partial: half of the traffic for {phase_minutes} minutes",
                {"name": "canary-50", "weight": 50, "bake": phase, "check_every": "1m"},
            ),
            (
                "full: everyone on the fix, watched for 30 minutes",
                {
                    "name": "full",
                    "weight": 100,
                    "bake": "30m",
                    "check_every": "1m",
                    "gates": ["error-rate"],
                },
            ),
        ),
    )


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="safe",
            summary="5% -> 10% -> 25% -> 50% -> 75% -> 100% over 7 days, approval before 100%",
            gates=_GRADUAL_GATES,
            stages=_ladder(["1d"] * 5 + ["2d"], check_every="5m", approve_last_step=True),
        ),
        Template(
            name="fast",
            summary="5% -> 10% -> 25% -> 50% -> 75% -> 100% over 3 days, approval before 100%",
            gates=_GRADUAL_GATES,
            stages=_ladder(
                ["6h", "6h", "12h", "12h", "12h", "1d"], check_every="2m", approve_last_step=True
            ),
        ),
        Template(
            name="instant",
            summary="100% at once, watched for 1 minute; stable again at the first sign of trouble",
            gates=(
                _error_rate(0.01, window="30s", failure_limit=2),
                _response_time(0.5, window="30s", failure_limit=2),
            ),
            stages=(
                (
                    "everyone on the new version at once, watched for a minute",
                    {"name": "full", "weight": 100, "bake": "1m", "check_every": "10s"},
                ),
            ),
        ),
        Template(
            name="improve",
            summary="10% -> 50% -> 100% for a change meant to fail less: a stage passes once"
            " the canary's errors are shown 15% below the stable's",
            gates=(
                _error_rate(0.01, **_SUSTAINED),
                _errors_shown_lower(15),
                _response_time(0.5, **_SUSTAINED),
            ),
            stages=(
                (
                    "10% of traffic for 2 hours, long enough to show the gain",
                    {"name": "canary-10", "weight": 10, "bake": "2h", "check_every": "5m"},
                ),
                (
                    "half of the traffic for 4 hours",
                    {"name": "canary-50", "weight": 50, "bake": "4h", "check_every": "5m"},
                ),
                (
                    "everyone on the new version, watched for an hour",
                    {
                        "name": "full",
                        "weight": 100,
                        "bake": "1h",
                        "check_every": "5m",
                        "gates": list(_FULL_GATES),
                    },
                ),
            ),
        ),
        _hotfix("p0", 10),
        _hotfix("p1", 15),
        _hotfix("p2", 30),
    )
}


class UnknownTemplate(ValueError):
    """A template name that is not one of TEMPLATES; the message lists the known ones."""


def template_named(name: object) -> Template:
    """The template called ``name``, or UnknownTemplate listing the known ones."""
    if isinstance(name, str) and name in TEMPLATES:
        return TEMPLATES[name]
    shown = repr(name)[:60] if isinstance(name, str) else f"a {type(name).__name__}"
    raise UnknownTemplate(
        f"unknown template {shown}: use one of {', '.join(TEMPLATES)}, or leave template out"
        " and write gates and stages yourself"
    )


def with_template(
    data: dict[str, Any],
) -> tuple[dict[str, Any], Template | None, frozenset[str]]:
    """Plan data with its ``template`` filled in, the template, and the fields taken from it.

    The plan's own top-level fields win, whole: its ``stages`` replace the template's list.
    """
    if "template" not in data:
        return data, None, frozenset()
    mine = dict(data)
    template = template_named(mine.pop("template"))
    router = mine.get("router")
    given = template.fields(router.get("kind") if isinstance(router, dict) else None)
    taken = frozenset(given) - frozenset(mine)
    return given | mine, template, taken


def describe(template: Template) -> str:
    """One line: the template's name, its ladder and how long it bakes."""
    return f"{template.name}: {template.summary} ({format_duration(template.total_bake())})"
