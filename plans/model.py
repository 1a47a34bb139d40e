"""The rollout plan: what a release engineer writes in YAML, validated before anything runs."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plans.durations import Duration, format_duration
from plans.errors import PlanError
from plans.presets import PRESETS

# Names end up inside PromQL label matchers and HAProxy runtime commands, so they
# may hold nothing that could close a string, open a selector or start a new command.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PLACEHOLDER = re.compile(r"\$(\w+)|\$\{(\w+)\}")
QUERY_PLACEHOLDERS = ("canary", "stable", "service", "backend", "target", "window")


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a safe {what}: use 1-63 letters, digits, '_', '.', ':' or '-',"
            " starting with a letter or digit (it is put into PromQL and HAProxy commands)"
        )
    return value


def _check_env(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an environment variable name: use letters, digits and '_'"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HAProxyRouter(_Strict):
    """HAProxy moved through its runtime API (admin-level stats socket)."""

    kind: Literal["haproxy"] = "haproxy"
    runtime_api: str = Field(
        description="unix:///path/to/admin.sock, a socket path, or tcp://127.0.0.1:9999"
    )
    backend: str = Field(description="the HAProxy backend holding the stable and canary servers")
    timeout: Duration = timedelta(seconds=5)

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        return _check_name(v, "backend name")

    @field_validator("runtime_api")
    @classmethod
    def _runtime_api(cls, v: str) -> str:
        if v.startswith("tcp://"):
            host, _, port = v[6:].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{v!r}: write the TCP runtime API as tcp://HOST:PORT")
        elif v in ("unix://", "unix:///") or (
            not v.startswith("unix://") and not v.startswith("/")
        ):
            raise ValueError(
                f"{v!r}: write the runtime API as unix:///path/admin.sock or tcp://HOST:PORT"
            )
        return v

    def describe(self) -> str:
        return f"haproxy {self.backend} via {self.runtime_api}"


Router = Annotated[HAProxyRouter, Field(discriminator="kind")]


class PrometheusSource(_Strict):
    """A Prometheus server the gates query."""

    kind: Literal["prometheus"] = "prometheus"
    url: str
    bearer_token_env: str | None = Field(
        default=None, description="environment variable holding a bearer token, read by the worker"
    )
    timeout: Duration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        match = re.fullmatch(
            r"https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?(/\S*)?", v
        )
        if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) < 65536):
            raise ValueError(f"{v!r}: write the Prometheus URL as http(s)://host:port")
        return v.rstrip("/")

    @field_validator("bearer_token_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env(v)


MetricsSource = Annotated[PrometheusSource, Field(discriminator="kind")]


GateKind = Literal["threshold", "relative", "statistical"]
Direction = Literal["increase", "decrease", "either"]
StatTest = Literal["mann-whitney", "two-proportion"]
GateActionName = Literal["rollback", "pause", "notify", "ignore"]
Severity = Literal["critical", "warning", "info"]
Unit = Literal["", "ratio", "seconds"]

# What a severity does when the gate fails / stays inconclusive. An explicit on_fail or
# on_inconclusive wins over these: severity is the shorthand, the action the override.
SEVERITY_ACTIONS: dict[str, tuple[GateActionName, GateActionName]] = {
    "critical": ("rollback", "pause"),
    "warning": ("notify", "notify"),
    "info": ("ignore", "ignore"),
}
_DEFAULT_CONFIDENCE = 0.98
_DEFAULT_STEP = timedelta(seconds=10)
TWO_PROPORTION_MIN_POINTS = 3
# String literals are dropped before looking for range selectors: a regex matcher such as
# code=~"5[0-9]+" has brackets that are not a window.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[\s*([^\]:]*?)\s*(?::[^\]]*)?\]")
_PROMQL_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_PROMQL_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_PROMQL_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def format_value(value: float, unit: str = "") -> str:
    """A measured value as people read it: ``4.1%`` for a ratio, ``212ms`` for seconds."""
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return f"{value * 1000:.3g}ms" if abs(value) < 1 else f"{value:.3g}s"
    return f"{value:g}"


def promql_duration(value: timedelta) -> str:
    """A duration written the way PromQL accepts it in a range selector (one unit)."""
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def range_windows(query: str) -> list[str]:
    """The range selectors' windows in a query, as written (``1m``, ``$window``)."""
    return [m.group(1) for m in _RANGE.finditer(_STRINGS.sub('""', query)) if m.group(1)]


def _window_seconds(text: str, window: timedelta) -> float | None:
    if text in ("$window", "${window}"):
        return window.total_seconds()
    if _PROMQL_DURATION.match(text):
        return sum(int(n) * _PROMQL_UNITS[u] for n, u in _PROMQL_PART.findall(text))
    return None


def _placeholders(query: str) -> set[str]:
    return {a or b for a, b in PLACEHOLDER.findall(query)}


def mann_whitney_min_points(confidence: float, direction: str) -> int:
    """Fewest points per side with which a one-sided exact test can reach ``confidence``."""
    alpha = (1 - confidence) / (2 if direction == "either" else 1)
    n = 1
    while 1 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


class Gate(_Strict):
    """A metric that must hold while a stage bakes: its kind, its data and its policy.

    - ``threshold``: the canary's value against ``max`` / ``min``.
    - ``relative``: the canary against the stable measured by the same query (``$target``
      filled in twice): for ``direction: increase`` it must stay at or below
      ``stable x factor + margin``.
    - ``statistical``: the same bound, tested with ``confidence`` over the window's data,
      read as a range query with one point per ``step`` (``$window`` in the queries then
      stands for the step): ``two-proportion`` for rates (the rate times the request count
      of ``samples_query`` gives each step's counts), ``mann-whitney`` for latency-like
      values.

    A gate below ``min_samples`` requests (``samples_query``) is inconclusive, never a pass.
    """

    name: str
    kind: GateKind = "threshold"
    preset: str | None = Field(default=None, description="a built-in gate (plans.presets)")
    query: str = Field(
        description="PromQL; $canary, $stable, $service, $backend, $target and $window are"
        " filled in"
    )
    samples_query: str | None = Field(
        default=None, description="PromQL counting the requests behind one side's value"
    )
    min_samples: int = Field(default=0, ge=0, description="fewer requests: inconclusive")
    window: Duration = Field(
        default=timedelta(minutes=1), description="the span $window stands for"
    )
    step: Duration = Field(
        default=_DEFAULT_STEP, description="statistical: one point per step ($window in it)"
    )
    max: float | None = None
    min: float | None = None
    factor: float = Field(default=1.0, ge=1.0, description="relative room: stable x factor")
    margin: float = Field(default=0.0, ge=0.0, description="absolute room: stable + margin")
    direction: Direction = Field(default="increase", description="which change is a regression")
    test: StatTest | None = None
    confidence: float = Field(default=_DEFAULT_CONFIDENCE, gt=0.5, lt=1.0)
    failure_limit: int = Field(default=1, ge=1, le=1000)
    inconclusive_limit: int = Field(default=3, ge=1, le=1000)
    on_fail: GateActionName | None = None
    on_inconclusive: GateActionName | None = None
    severity: Severity = "critical"
    dry_run: bool = Field(default=False, description="evaluate and record, never act")
    unit: Unit = Field(default="", description="how values are shown: ratio as %, seconds")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        name = data["preset"]
        preset = PRESETS.get(name) if isinstance(name, str) else None
        if preset is None:
            raise ValueError(f"unknown preset {name!r}: use one of {', '.join(sorted(PRESETS))}")
        kind = data.get("kind", "threshold")
        defaults = preset.defaults(kind if isinstance(kind, str) else "threshold")
        if kind == "threshold" and ("max" in data or "min" in data):
            defaults.pop("max", None)
            defaults.pop("min", None)
        return {**defaults, **data}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "gate name")

    @field_validator("query", "samples_query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("the query is empty: write a PromQL expression")
        unknown = sorted(_placeholders(v) - set(QUERY_PLACEHOLDERS))
        if unknown:
            allowed = ", ".join("$" + p for p in QUERY_PLACEHOLDERS)
            raise ValueError(
                f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}: use {allowed}"
            )
        return v

    @field_validator("window", "step")
    @classmethod
    def _whole_seconds(cls, v: timedelta) -> timedelta:
        seconds = v.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise ValueError(f"{format_duration(v)}: use whole seconds, 1s or more")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Gate:
        # "gate 'x' needs a threshold" reads as a sentence, the others as "gate 'x': problem".
        problems = [
            f"gate {self.name!r}{' ' if p.startswith('needs ') else ': '}{p}"
            for p in self._problems()
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self) -> list[str]:
        if self.kind == "threshold":
            problems = self._threshold_problems()
        else:
            problems = self._comparison_problems()
        if self.step != _DEFAULT_STEP and self.kind != "statistical":
            problems.append("step applies to statistical gates")
        if self.min_samples > 0 and self.samples_query is None:
            problems.append(
                f"min_samples {self.min_samples} needs samples_query: a query counting the"
                " requests in the window, e.g. sum(increase(requests_total[$window]))"
            )
        return problems

    def _threshold_problems(self) -> list[str]:
        if self.max is None and self.min is None:
            return ["needs a threshold: set max, min or both"]
        for bound in (self.max, self.min):
            if bound is not None and bound != bound:
                return ["a threshold cannot be NaN"]
        problems = []
        if self.max is not None and self.min is not None and self.min > self.max:
            problems.append(f"min {self.min:g} is above max {self.max:g}")
        extra = [
            name
            for name, changed in (
                ("factor", self.factor != 1.0),
                ("margin", self.margin != 0.0),
                ("direction", self.direction != "increase"),
                ("test", self.test is not None),
                ("confidence", self.confidence != _DEFAULT_CONFIDENCE),
            )
            if changed
        ]
        if extra:
            problems.append(
                f"{', '.join(extra)} apply to relative and statistical gates:"
                " a threshold gate uses max and min (or set kind)"
            )
        return problems

    def _comparison_problems(self) -> list[str]:
        problems = []
        if self.max is not None or self.min is not None:
            problems.append(
                f"max and min apply to threshold gates: a {self.kind} gate compares the canary"
                " with the stable using factor and margin"
            )
        if self.factor != self.factor or self.margin != self.margin:
            problems.append("factor and margin cannot be NaN")
        for field, text in (("query", self.query), ("samples_query", self.samples_query)):
            if text is None:
                continue
            named = _placeholders(text)
            fixed = sorted(named & {"canary", "stable"})
            if fixed:
                problems.append(
                    f"{field}: write the version as $target (filled with the canary, then the"
                    f" stable), not {', '.join('$' + n for n in fixed)}"
                )
            elif "target" not in named:
                problems.append(
                    f"{field}: a {self.kind} gate's query must select the version with $target"
                    " (filled with the canary, then the stable)"
                )
        if self.kind == "relative":
            if self.factor == 1.0 and self.margin == 0.0:
                problems.append(
                    "factor 1 and margin 0 fail whenever the canary is a hair worse than the"
                    " stable: allow some room, e.g. factor: 1.5 or margin: 0.001"
                )
            if self.test is not None or self.confidence != _DEFAULT_CONFIDENCE:
                problems.append("test and confidence apply to statistical gates")
            return problems
        if self.test is None:
            problems.append(
                "a statistical gate needs test: mann-whitney (latency-like values) or"
                " two-proportion (rates, with samples_query counting requests)"
            )
        elif self.test == "two-proportion" and self.samples_query is None:
            problems.append(
                "test two-proportion needs samples_query: the request count that turns each"
                " side's rate into counts"
            )
        if self.test is not None:
            points = self.points_per_side
            needed = self.min_points
            if points < needed:
                why = (
                    f"Mann-Whitney needs {needed} to reach {self.confidence:.0%} confidence"
                    if self.test == "mann-whitney"
                    else f"the two-proportion test needs {needed} to measure burstiness"
                )
                problems.append(
                    f"window {format_duration(self.window)} / step {format_duration(self.step)}"
                    f" gives {points} point(s) per side, and {why}: lengthen window or"
                    " shorten step"
                )
        return problems

    @property
    def points_per_side(self) -> int:
        """How many steps a statistical gate's range query has (window / step)."""
        return int(self.window.total_seconds() // self.step.total_seconds())

    @property
    def min_points(self) -> int:
        """Fewest usable steps per side a statistical gate judges on."""
        if self.test == "mann-whitney":
            return mann_whitney_min_points(self.confidence, self.direction)
        return TWO_PROPORTION_MIN_POINTS

    @property
    def compares(self) -> bool:
        """True when the gate measures the stable too (relative and statistical gates)."""
        return self.kind != "threshold"

    @property
    def fail_action(self) -> GateActionName:
        """What a sustained failure does: on_fail, else what the severity says."""
        return self.on_fail or SEVERITY_ACTIONS[self.severity][0]

    @property
    def inconclusive_action(self) -> GateActionName:
        """What a sustained lack of data does: on_inconclusive, else the severity's."""
        return self.on_inconclusive or SEVERITY_ACTIONS[self.severity][1]

    @property
    def queries_per_check(self) -> int:
        """How many queries one check of this gate runs (for time budgets)."""
        per_side = 1 + (self.samples_query is not None)
        return per_side * (2 if self.compares else 1)

    def render(
        self,
        values: dict[str, str],
        *,
        target: str | None = None,
        window: timedelta | None = None,
    ) -> str:
        """The query with its placeholders filled in (values are validated safe names).

        ``$target`` is the canary unless ``target`` says otherwise; ``$window`` is the gate's
        window unless ``window`` says otherwise. A missing value raises KeyError.
        """
        return self._fill(self.query, values, target, window)

    def render_samples(
        self,
        values: dict[str, str],
        *,
        target: str | None = None,
        window: timedelta | None = None,
    ) -> str | None:
        """The samples query filled in like ``render``, or None when the gate has none."""
        if self.samples_query is None:
            return None
        return self._fill(self.samples_query, values, target, window)

    def _fill(
        self,
        query: str,
        values: dict[str, str],
        target: str | None,
        window: timedelta | None,
    ) -> str:
        filled = dict(values)
        filled["window"] = promql_duration(window or self.window)
        if target is not None:
            filled["target"] = target
        elif "canary" in values:
            filled["target"] = values["canary"]

        def fill(match: re.Match[str]) -> str:
            return filled[match.group(1) or match.group(2)]

        return PLACEHOLDER.sub(fill, query)

    def show(self, value: float) -> str:
        """A value of this gate's metric, in its unit."""
        return format_value(value, self.unit)

    def describe_limit(self) -> str:
        """The bound against the stable: ``<= stable x1.5+0.1%``."""
        up = f"stable{f' x{self.factor:g}' if self.factor != 1 else ''}"
        up += f"+{self.show(self.margin)}" if self.margin else ""
        down = f"stable{f' /{self.factor:g}' if self.factor != 1 else ''}"
        down += f"-{self.show(self.margin)}" if self.margin else ""
        if self.direction == "increase":
            return f"<= {up}"
        if self.direction == "decrease":
            return f">= {down}"
        return f">= {down} and <= {up}"

    def describe_threshold(self) -> str:
        """What the gate wants, in a few words (shown beside each verdict)."""
        if self.kind == "relative":
            return self.describe_limit()
        if self.kind == "statistical":
            return f"{self.describe_limit()} ({self.test}, {self.confidence:.0%} confidence)"
        parts = []
        if self.min is not None:
            parts.append(f">= {self.show(self.min)}")
        if self.max is not None:
            parts.append(f"<= {self.show(self.max)}")
        return " and ".join(parts)

    def window_problems(self, stage: Stage) -> list[tuple[str, str]]:
        """(field, window) pairs of this gate that are longer than the stage's bake."""
        bake = stage.bake.total_seconds()
        found = []
        for field, text in (("query", self.query), ("samples_query", self.samples_query)):
            for written in range_windows(text or ""):
                seconds = _window_seconds(written, self.window)
                if seconds is None or seconds <= bake:
                    continue
                if written.startswith("$"):
                    found.append(("window", format_duration(self.window)))
                else:
                    found.append((field, f"[{written}]"))
        if self.kind == "statistical" and self.window.total_seconds() > bake:
            found.append(("window", format_duration(self.window)))
        return list(dict.fromkeys(found))


class Stage(_Strict):
    """One step of the rollout: the canary's share of traffic and how long it bakes there."""

    name: str
    weight: int = Field(description="percent of traffic sent to the canary, 0-100")
    bake: Duration = timedelta(minutes=10)
    check_every: Duration = timedelta(minutes=1)
    approval: bool = Field(default=False, description="wait for `rollout approve` after baking")
    gates: list[str] | None = Field(
        default=None, description="names of the plan's gates checked here (default: all)"
    )
    progress_deadline: Duration | None = Field(
        default=None,
        description="longest the stage may run (paused time excluded) before on_deadline acts",
    )
    on_deadline: Literal["pause", "rollback", "notify"] = "pause"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "stage name")

    @field_validator("weight", mode="before")
    @classmethod
    def _weight_type(cls, v: object) -> object:
        if isinstance(v, bool):
            raise ValueError(f"weight {v} is not a number: use a percentage from 0 to 100")
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: int) -> int:
        if not 0 <= v <= 100:
            raise ValueError(f"weight {v} is out of range: use a percentage from 0 to 100")
        return v

    @field_validator("check_every")
    @classmethod
    def _check_every(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError(f"check_every {format_duration(v)} is too short: use 1s or more")
        return v

    @model_validator(mode="after")
    def _deadline(self) -> Stage:
        if self.progress_deadline is not None and self.progress_deadline <= self.bake:
            raise ValueError(
                f"progress_deadline {format_duration(self.progress_deadline)} is not longer than"
                f" the bake {format_duration(self.bake)}: the stage could never finish in time"
            )
        return self


class Notify(_Strict):
    """Where progress and rollbacks are announced."""

    webhook_url_env: str | None = Field(
        default=None, description="environment variable holding a Slack-compatible webhook URL"
    )

    @field_validator("webhook_url_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env(v)


class Plan(_Strict):
    """A whole rollout: which service, which servers, how traffic moves and what must hold."""

    service: str
    version: str = Field(default="canary", description="the new version's label, for people")
    stable: str = Field(description="the stable server's name, as the router names it")
    canary: str = Field(description="the canary server's name, as the router names it")
    router: Router
    metrics: MetricsSource
    gates: list[Gate] = Field(default_factory=list)
    stages: list[Stage]
    notify: Notify = Field(default_factory=Notify)

    @field_validator("service", "stable", "canary")
    @classmethod
    def _names(cls, v: str) -> str:
        return _check_name(v, "name")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _check_name(v, "version label")

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        problems = []
        if self.stable == self.canary:
            problems.append(f"stable and canary are both {self.stable!r}: name two servers")
        if not self.stages:
            problems.append("stages: list at least one stage")
        names = [g.name for g in self.gates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"gates: names must be unique, repeated: {', '.join(dupes)}")
        stage_names = [s.name for s in self.stages]
        dupes = sorted({n for n in stage_names if stage_names.count(n) > 1})
        if dupes:
            problems.append(f"stages: names must be unique, repeated: {', '.join(dupes)}")
        for i, (prev, cur) in enumerate(zip(self.stages, self.stages[1:], strict=False), 1):
            if cur.weight <= prev.weight:
                problems.append(
                    f"stages.{i}.weight: {cur.weight} does not increase on the previous stage's"
                    f" {prev.weight}: weights must go up stage by stage"
                )
        for i, stage in enumerate(self.stages):
            for gate in stage.gates or []:
                if gate not in names:
                    known = ", ".join(names) or "none defined"
                    problems.append(f"stages.{i}.gates: unknown gate {gate!r} (gates: {known})")
        problems += self._gate_stage_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _gate_stage_problems(self) -> list[str]:
        """Gates that cannot judge a stage they apply to: windows past the bake, no stable."""
        problems: list[str] = []
        seen: set[tuple[int, str]] = set()
        for j, stage in enumerate(self.stages):
            for gate in self.gates_for(stage):
                i = self.gates.index(gate)
                if gate.compares and stage.weight == 100:
                    problems.append(
                        f"stages.{j}.gates: {gate.kind} gate {gate.name!r} compares the canary"
                        " with the stable, which gets no traffic at weight 100: list this"
                        " stage's gates without it"
                    )
                for field, window in gate.window_problems(stage):
                    if (i, field) in seen:
                        continue
                    seen.add((i, field))
                    bake = format_duration(stage.bake)
                    problems.append(
                        f"gates.{i}.{field}: window {window} is longer than the {bake} bake of"
                        f" stage {stage.name!r} (stages.{j}.bake), so it would judge the stage"
                        " on data from before it: shorten the window or lengthen the bake"
                    )
        return problems

    @property
    def workflow_id(self) -> str:
        return f"rollout-{self.service}"

    def gates_for(self, stage: Stage) -> list[Gate]:
        if stage.gates is None:
            return list(self.gates)
        return [g for g in self.gates if g.name in stage.gates]

    def placeholders(self) -> dict[str, str]:
        values = {"canary": self.canary, "stable": self.stable, "service": self.service}
        backend = getattr(self.router, "backend", None)
        if isinstance(backend, str):
            values["backend"] = backend
        return values

    def total_bake(self) -> timedelta:
        return sum((s.bake for s in self.stages), timedelta())


def _location(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's discriminator tags ("haproxy") so the path reads like the YAML.
    return ".".join(str(p) for p in loc if p not in ("haproxy", "prometheus")) or "plan"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = _location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling"
        elif item["type"] == "missing":
            message = "missing: this field is required"
        for part in message.split("\n") if item["type"] == "value_error" else [message]:
            problems.append(f"{where}: {part}" if where != "plan" else part)
    return problems


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """Validate plan data (already loaded from YAML/JSON); raise PlanError naming each field."""
    if data is None:
        raise PlanError(["the plan is empty: write its fields (see the README)"], source)
    if not isinstance(data, dict):
        raise PlanError(
            [f"the plan must be a mapping of fields, not {type(data).__name__}"], source
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        raise PlanError(_problems(error), source) from None


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PlanError([f"cannot read {path}: {error.strerror}"], str(path)) from None
    except UnicodeDecodeError as error:
        raise PlanError(
            [f"cannot read {path} as UTF-8 text (byte {error.start}): save it as UTF-8"],
            str(path),
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PlanError([f"not valid YAML: {error}"], str(path)) from None
    return parse_plan(data, str(path))
