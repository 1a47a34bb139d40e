"""The rollout plan: what a release engineer writes in YAML, validated before anything runs."""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import reprlib
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plans.durations import Duration, format_duration
from plans.errors import PlanError
from plans.presets import PRESETS
from plans.visibility import rollout_workflow_id

# Names end up inside PromQL label matchers and HAProxy runtime commands, so they
# may hold nothing that could close a string, open a selector or start a new command.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PLACEHOLDER = re.compile(r"\$(\w+)|\$\{(\w+)\}")
QUERY_PLACEHOLDERS = ("canary", "stable", "service", "backend", "target", "window")

# How big a plan may be. The CLI validates a plan, and the worker validates it again each time
# a run starts or continues as new; it also travels in the run's history. Real plans hold a
# few gates and a handful of stages in a few kilobytes, so these leave ample room while
# keeping one file from tying up either.
MAX_PLAN_BYTES = 1024 * 1024  # the file load_plan reads
MAX_YAML_VALUES = 20_000  # values in the file, each use of an alias counted in full
MAX_YAML_DEPTH = 20  # levels of nesting; a plan needs 5
MAX_STAGES = 100
MAX_GATES = 50  # in the plan, and named by one stage
MAX_QUERY_CHARS = 4_000
MAX_PLACEHOLDERS = 50  # in one query
MAX_TEXT_CHARS = 1_000  # a URL or a runtime API address
# What an error message shows: values are quoted by their start, and a bad plan's problems
# are listed up to a point, so a huge value cannot make a huge message.
QUOTE_CHARS = 60
MAX_PROBLEM_CHARS = 1_000
MAX_PROBLEMS_SHOWN = 50

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = QUOTE_CHARS
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5


def quote(value: object) -> str:
    """A value as an error message shows it: its repr, or its start and its length if long."""
    if isinstance(value, str):
        if len(value) <= QUOTE_CHARS + 20:
            return repr(value)
        return f"{value[:QUOTE_CHARS]!r}\u2026 ({len(value):,} characters)"
    try:
        return _REPR.repr(value)
    except Exception:  # a value whose repr fails still gets a message
        return f"a {type(value).__name__}"


def _some(items: list[str], shown: int = 5) -> str:
    """The first few of a list, comma-separated, and how many more there are."""
    listed = ", ".join(items[:shown])
    return f"{listed} and {len(items) - shown:,} more" if len(items) > shown else listed


def _too_long(value: str, limit: int, what: str) -> str | None:
    """A message for a string past its limit, or None when it fits."""
    if len(value) <= limit:
        return None
    return f"{quote(value)} is longer than the {limit:,} characters {what}"


def _at_most(value: Any, limit: int, items: str, holder: str, fix: str) -> Any:
    """Refuse a list longer than ``limit`` before any of its items is validated."""
    if isinstance(value, list | tuple) and len(value) > limit:
        raise ValueError(f"{len(value):,} {items}, more than the {limit:,} {holder}: {fix}")
    return value


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a safe {what}: use 1-63 letters, digits, '_', '.', ':' or"
            " '-', starting with a letter or digit (it is put into PromQL and HAProxy commands)"
        )
    return value


def _check_env(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not an environment variable name: use letters, digits and '_'"
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
        too_long = _too_long(v, MAX_TEXT_CHARS, "a runtime API address may have")
        if too_long:
            raise ValueError(f"{too_long}: write it as unix:///path/admin.sock or tcp://HOST:PORT")
        if v.startswith("tcp://"):
            host, _, port = v[6:].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{quote(v)}: write the TCP runtime API as tcp://HOST:PORT")
        elif v in ("unix://", "unix:///") or (
            not v.startswith("unix://") and not v.startswith("/")
        ):
            raise ValueError(
                f"{quote(v)}: write the runtime API as unix:///path/admin.sock or tcp://HOST:PORT"
            )
        return v

    def describe(self) -> str:
        return f"haproxy {self.backend} via {self.runtime_api}"

    def target_key(self) -> str:
        """What a rollout owns here: the whole backend, since weights are relative within it.

        Two rollouts in one backend would each change the other's split, whichever
        servers they name.
        """
        address = self.runtime_api.removeprefix("unix://")
        return f"haproxy {address} backend {self.backend}"


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
        too_long = _too_long(v, MAX_TEXT_CHARS, "a Prometheus URL may have")
        if too_long:
            raise ValueError(f"{too_long}: write it as http(s)://host:port")
        match = re.fullmatch(
            r"https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?(/\S*)?", v
        )
        if match is None or (match.group(2) is not None and not 0 < int(match.group(2)) < 65536):
            raise ValueError(f"{quote(v)}: write the Prometheus URL as http(s)://host:port")
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
_QUOTES = re.compile("[\"'`]")
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
    """The range selectors' windows in a query, as written (``1m``, ``$window``).

    A selector is ``[`` up to the next ``]``; its window is what comes before any ``:``
    (a subquery's resolution), without spaces. Scanned, not matched with a regex: one that
    backtracks takes seconds on a query of a few thousand brackets or spaces.
    """
    text = _without_strings(query)
    found = []
    start = text.find("[")
    while start != -1:
        end = text.find("]", start + 1)
        if end == -1:
            break
        window = text[start + 1 : end].split(":", 1)[0].strip()
        if window:
            found.append(window)
        start = text.find("[", end + 1)
    return found


def _without_strings(query: str) -> str:
    """The query with each string literal ("...", '...' with backslash escapes, `...`) as "".

    A quote with no closing one is left as it is. Linear: when a quote finds no closing one,
    neither does any quote of its kind up to where that search stopped.
    """
    parts = []
    done = 0  # query[:done] is in parts
    dead_until = {'"': 0, "'": 0, "`": 0}  # a quote of this kind before here never closes
    found = _QUOTES.search(query)
    while found is not None:
        start = found.start()
        quote = query[start]
        end = -1 if start < dead_until[quote] else _closing(query, start, quote)
        if end < 0:
            dead_until[quote] = max(dead_until[quote], -end)
            found = _QUOTES.search(query, start + 1)
            continue
        parts += [query[done:start], '""']
        done = end + 1
        found = _QUOTES.search(query, done)
    parts.append(query[done:])
    return "".join(parts)


def _closing(query: str, start: int, quote: str) -> int:
    """Where the string opened at ``start`` closes, or minus where the search for it stopped."""
    if quote == "`":
        end = query.find("`", start + 1)
        return end if end >= 0 else -len(query)
    i = start + 1
    while i < len(query):
        char = query[i]
        if char == quote:
            return i
        if char == "\\":
            # An escape is a backslash and any character but a line break (regex's "\\.").
            if i + 1 == len(query) or query[i + 1] == "\n":
                return -i
            i += 2
        else:
            i += 1
    return -len(query)


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
            raise ValueError(
                f"unknown preset {quote(name)}: use one of {', '.join(sorted(PRESETS))}"
            )
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
        too_long = _too_long(v, MAX_QUERY_CHARS, "a query may have")
        if too_long:
            raise ValueError(f"{too_long}: shorten it, e.g. with a Prometheus recording rule")
        if not v.strip():
            raise ValueError("the query is empty: write a PromQL expression")
        count = sum(1 for _ in PLACEHOLDER.finditer(v))
        if count > MAX_PLACEHOLDERS:
            raise ValueError(
                f"{count:,} placeholders is more than the {MAX_PLACEHOLDERS} a query may hold:"
                " shorten it, e.g. with a Prometheus recording rule"
            )
        unknown = sorted(_placeholders(v) - set(QUERY_PLACEHOLDERS))
        if unknown:
            allowed = ", ".join("$" + p for p in QUERY_PLACEHOLDERS)
            named = _some(["$" + (u if len(u) <= 40 else u[:40] + "\u2026") for u in unknown])
            raise ValueError(f"unknown placeholder(s) {named}: use {allowed}")
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
        return list(dict.fromkeys((f, w) for f, w, seconds in self.windows() if seconds > bake))

    def windows(self) -> list[tuple[str, str, float]]:
        """(field, window as shown, seconds) of each window the gate reads data over."""
        found = []
        for field, text in (("query", self.query), ("samples_query", self.samples_query)):
            for written in range_windows(text or ""):
                seconds = _window_seconds(written, self.window)
                if seconds is None:
                    continue
                if written.startswith("$"):
                    found.append(("window", format_duration(self.window), seconds))
                else:
                    found.append((field, f"[{written}]", seconds))
        if self.kind == "statistical":
            found.append(("window", format_duration(self.window), self.window.total_seconds()))
        return found


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

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_count(cls, v: Any) -> Any:
        return _at_most(
            v, MAX_GATES, "gate names", "a stage may list", "name each gate it checks once"
        )

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
            raise ValueError(f"weight {quote(v)} is out of range: use a percentage from 0 to 100")
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

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_count(cls, v: Any) -> Any:
        return _at_most(
            v, MAX_GATES, "gates", "a plan may have", "keep the gates that decide a rollout"
        )

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_count(cls, v: Any) -> Any:
        return _at_most(v, MAX_STAGES, "stages", "a plan may have", "use fewer, longer stages")

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        problems = []
        if self.stable == self.canary:
            problems.append(f"stable and canary are both {self.stable!r}: name two servers")
        if not self.stages:
            problems.append("stages: list at least one stage")
        names = [g.name for g in self.gates]
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            problems.append(f"gates: names must be unique, repeated: {', '.join(dupes)}")
        dupes = sorted(n for n, count in Counter(s.name for s in self.stages).items() if count > 1)
        if dupes:
            problems.append(f"stages: names must be unique, repeated: {', '.join(dupes)}")
        for i, (prev, cur) in enumerate(zip(self.stages, self.stages[1:], strict=False), 1):
            if cur.weight <= prev.weight:
                problems.append(
                    f"stages.{i}.weight: {cur.weight} does not increase on the previous stage's"
                    f" {prev.weight}: weights must go up stage by stage"
                )
        known = set(names)
        for i, stage in enumerate(self.stages):
            for gate in stage.gates or []:
                if gate not in known:
                    listed = _some(names, 10) or "none defined"
                    problems.append(
                        f"stages.{i}.gates: unknown gate {quote(gate)} (gates: {listed})"
                    )
        problems += self._gate_stage_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _gate_stage_problems(self) -> list[str]:
        """Gates that cannot judge a stage they apply to: windows past the bake, no stable."""
        problems: list[str] = []
        # Each gate's windows are read once, not once per stage: a stage then looks up, per
        # field, the first window longer than its bake among the ever-longer ones.
        steps = [_longer_and_longer(gate.windows()) for gate in self.gates]
        seen: set[tuple[int, str]] = set()
        for j, stage in enumerate(self.stages):
            bake_s = stage.bake.total_seconds()
            for i in self._gate_indexes(stage):
                gate = self.gates[i]
                if gate.compares and stage.weight == 100:
                    problems.append(
                        f"stages.{j}.gates: {gate.kind} gate {gate.name!r} compares the canary"
                        " with the stable, which gets no traffic at weight 100: list this"
                        " stage's gates without it"
                    )
                longer = []
                for field, (seconds, found) in steps[i].items():
                    k = bisect.bisect_right(seconds, bake_s)
                    if k < len(found) and (i, field) not in seen:
                        longer.append((found[k][0], field, found[k][1]))
                for _, field, window in sorted(longer):
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
        return rollout_workflow_id(self.service)

    @property
    def target_lease_id(self) -> str:
        """Workflow id of the lease on this plan's traffic target; one holder at a time."""
        key = self.router.target_key()
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return f"target-{self.router.kind}-{digest}"

    def gates_for(self, stage: Stage) -> list[Gate]:
        return [self.gates[i] for i in self._gate_indexes(stage)]

    def _gate_indexes(self, stage: Stage) -> list[int]:
        """Positions in ``gates`` of the gates a stage checks, in the plan's order."""
        if stage.gates is None:
            return list(range(len(self.gates)))
        named = set(stage.gates)
        return [i for i, g in enumerate(self.gates) if g.name in named]

    def placeholders(self) -> dict[str, str]:
        values = {"canary": self.canary, "stable": self.stable, "service": self.service}
        backend = getattr(self.router, "backend", None)
        if isinstance(backend, str):
            values["backend"] = backend
        return values

    def total_bake(self) -> timedelta:
        return sum((s.bake for s in self.stages), timedelta())


def _longer_and_longer(
    windows: list[tuple[str, str, float]],
) -> dict[str, tuple[list[float], list[tuple[int, str]]]]:
    """Per field, the windows longer than every earlier one of that field, in order.

    Only these can be the first window of a field that is longer than some bake; their
    seconds go up, so that first one is found by bisection. Each keeps its position among
    all windows, which orders one stage's problems as the windows are written.
    """
    steps: dict[str, tuple[list[float], list[tuple[int, str]]]] = {}
    for position, (field, window, seconds) in enumerate(windows):
        longest, found = steps.setdefault(field, ([], []))
        if not longest or seconds > longest[-1]:
            longest.append(seconds)
            found.append((position, window))
    return steps


def _location(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's discriminator tags ("haproxy") so the path reads like the YAML.
    parts = [_clip(str(p), 40) for p in loc if p not in ("haproxy", "prometheus")]
    return ".".join(parts) or "plan"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}\u2026 ({len(text):,} characters)"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = _location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling"
        elif item["type"] == "missing":
            message = "missing: this field is required"
        elif item["type"] != "value_error":
            # pydantic's own messages may repeat the input (a discriminator's tag, say).
            for value in [item.get("input"), *item.get("ctx", {}).values()]:
                if isinstance(value, str) and len(value) > QUOTE_CHARS + 20:
                    message = message.replace(value, _clip(value, QUOTE_CHARS))
        for part in message.split("\n") if item["type"] == "value_error" else [message]:
            problems.append(f"{where}: {part}" if where != "plan" else part)
    return problems


def _invalid(problems: list[str], source: str) -> PlanError:
    """The PlanError for these problems, each cut to a readable length and the list too."""
    shown = [_clip(p, MAX_PROBLEM_CHARS) for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(
            f"... and {len(problems) - MAX_PROBLEMS_SHOWN:,} more: fix the ones above first"
        )
    return PlanError(shown, source)


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
        raise _invalid(_problems(error), source) from None


class _TooBig(Exception):
    """A YAML document past one of the loader's limits; the message says which."""


_TOO_MANY = (
    f"the YAML has more than {MAX_YAML_VALUES:,} values, counting each use of an alias (*name)"
    " in full, where a plan needs a few hundred: check that this is the plan, and write it"
    " without aliases of aliases"
)
_TOO_DEEP = (
    f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep, counting aliases (*name),"
    " where a plan needs 5: write the plan's fields out plainly"
)


# libyaml when PyYAML has it: ten times faster than the pure-Python parser.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_shape(text: str) -> None:
    """Refuse YAML nested too deep or too big once its aliases are expanded, before loading.

    Aliases let a few hundred bytes stand for billions of values ("billion laughs"), and
    loading nests as deep as the text does. One pass over the parser's events counts each
    use of an alias in full, and stops at the first limit it passes.
    """
    open_: list[tuple[str | None, int]] = []  # (anchor, values counted on opening) per collection
    depth_below: list[int] = []  # per open collection: the deepest of its children so far
    done: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) of its finished node
    values = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise _TooBig(
                    "the YAML has an alias (*name) inside the value it names, which never ends:"
                    " write the value out"
                )
            size, depth = done.get(event.anchor or "", (1, 1))
        elif isinstance(event, yaml.CollectionStartEvent):
            values += 1
            open_.append((event.anchor, values))
            depth_below.append(0)
            if values > MAX_YAML_VALUES:
                raise _TooBig(_TOO_MANY)
            if len(open_) > MAX_YAML_DEPTH:
                raise _TooBig(_TOO_DEEP)
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before = open_.pop()
            size, depth = values - before, 1 + depth_below.pop()
            if anchor is not None:
                done[anchor] = (size + 1, depth)
            if depth_below:
                depth_below[-1] = max(depth_below[-1], depth)
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size, depth = 1, 1
            if event.anchor is not None:
                done[event.anchor] = (1, 1)
        else:
            continue
        values += size
        if depth_below:
            depth_below[-1] = max(depth_below[-1], depth)
        if values > MAX_YAML_VALUES:
            raise _TooBig(_TOO_MANY)
        if len(open_) + depth > MAX_YAML_DEPTH:
            raise _TooBig(_TOO_DEEP)


def _load_yaml(text: str, source: str) -> Any:
    try:
        _check_yaml_shape(text)
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise _invalid([f"not valid YAML: {error}"], source) from None
    except _TooBig as error:
        raise _invalid([str(error)], source) from None
    except (ValueError, OverflowError) as error:  # e.g. an integer of 5,000 digits
        raise _invalid([f"not valid YAML: a value cannot be read: {error}"], source) from None


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (at most MAX_PLAN_BYTES)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PLAN_BYTES + 1)
    except OSError as error:
        raise PlanError([f"cannot read {path}: {error.strerror}"], str(path)) from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError(
            [
                f"{path} is larger than {MAX_PLAN_BYTES:,} bytes, the most a plan file may be:"
                " a plan is a few kilobytes; check that this is the plan, and split a plan"
                " that big into several rollouts"
            ],
            str(path),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PlanError(
            [f"cannot read {path} as UTF-8 text (byte {error.start}): save it as UTF-8"],
            str(path),
        ) from None
    return parse_plan(_load_yaml(text, str(path)), str(path))
