"""The rollout plan: what a release engineer writes in YAML, validated before anything runs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plans.durations import Duration, format_duration
from plans.errors import PlanError

# Names end up inside PromQL label matchers and HAProxy runtime commands, so they
# may hold nothing that could close a string, open a selector or start a new command.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PLACEHOLDER = re.compile(r"\$(\w+)|\$\{(\w+)\}")
QUERY_PLACEHOLDERS = ("canary", "stable", "service")


def _check_name(value: str, what: str) -> str:
    if not SAFE_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a safe {what}: use 1-63 letters, digits, '_', '.', ':' or '-',"
            " starting with a letter or digit (it is put into PromQL and HAProxy commands)"
        )
    return value


def _check_env(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.match(value):
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
        elif not v.startswith("unix://") and not v.startswith("/"):
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
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r}: write the Prometheus URL as http(s)://host:port")
        return v.rstrip("/")

    @field_validator("bearer_token_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env(v)


MetricsSource = Annotated[PrometheusSource, Field(discriminator="kind")]


class Gate(_Strict):
    """A metric that must hold while a stage bakes."""

    name: str
    query: str = Field(description="PromQL; $canary, $stable and $service are filled in")
    max: float | None = None
    min: float | None = None
    failure_limit: int = Field(default=1, ge=1, le=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "gate name")

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the query is empty: write a PromQL expression")
        unknown = sorted({a or b for a, b in PLACEHOLDER.findall(v)} - set(QUERY_PLACEHOLDERS))
        if unknown:
            allowed = ", ".join("$" + p for p in QUERY_PLACEHOLDERS)
            raise ValueError(
                f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}: use {allowed}"
            )
        return v

    @model_validator(mode="after")
    def _bounds(self) -> Gate:
        if self.max is None and self.min is None:
            raise ValueError(f"gate {self.name!r} needs a threshold: set max, min or both")
        for bound in (self.max, self.min):
            if bound is not None and bound != bound:
                raise ValueError(f"gate {self.name!r}: a threshold cannot be NaN")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"gate {self.name!r}: min {self.min} is above max {self.max}")
        return self

    def render(self, values: dict[str, str]) -> str:
        """The query with its placeholders filled in (values are validated safe names)."""

        def fill(match: re.Match[str]) -> str:
            return values[match.group(1) or match.group(2)]

        return PLACEHOLDER.sub(fill, self.query)

    def describe_threshold(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "stage name")

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
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def workflow_id(self) -> str:
        return f"rollout-{self.service}"

    def gates_for(self, stage: Stage) -> list[Gate]:
        if stage.gates is None:
            return list(self.gates)
        return [g for g in self.gates if g.name in stage.gates]

    def placeholders(self) -> dict[str, str]:
        return {"canary": self.canary, "stable": self.stable, "service": self.service}

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
        for part in message.split("; ") if item["type"] == "value_error" else [message]:
            problems.append(f"{where}: {part}" if where != "plan" else part)
    return problems


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """Validate plan data (already loaded from YAML/JSON); raise PlanError naming each field."""
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
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PlanError([f"not valid YAML: {error}"], str(path)) from None
    return parse_plan(data, str(path))
