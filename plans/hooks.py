"""Hooks: external systems a rollout asks (gates, checks) or tells (notify) at set points.

A hook is an HTTP call the worker makes with a versioned JSON payload (``HookPayload``),
signed in the Standard Webhooks form when the hook names a secret
(``plans.governance.hook_signing``; ``verify_signature`` is the receivers' check). The
secret and any headers are read by the worker from environment variables: only their names
travel in the workflow's history. ``smoke`` is the built-in check: requests to the canary
(or blue-green's preview route) before users get any of its traffic.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from plans import text
from plans.addresses import url_refusal
from plans.durations import Duration
from plans.governance.hook_signing import LEGACY_SIGNATURE_HEADER, SIGNED_HEADERS
from plans.governance.hook_signing import (
    sign as sign,  # re-exported: receivers import these from here
)
from plans.governance.hook_signing import verify_signature as verify_signature
from plans.notify import EventKind
from plans.text import EnvName, Strict

PAYLOAD_VERSION = 1
SIGNATURE_HEADER = LEGACY_SIGNATURE_HEADER  # deprecated: the body-only signature
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_HOOKS = 20
# A 202's retry_after is kept within these bounds: a receiver cannot make the rollout ask
# again in a busy loop, nor forget it for a month.
MIN_RETRY_AFTER = timedelta(seconds=1)
MAX_RETRY_AFTER = timedelta(hours=1)
EXCERPT_CHARS = 300

HookPoint = Literal[
    "before_rollout", "before_stage", "before_promote", "after_promote", "on_rollback", "event"
]
HookMode = Literal["gate", "check", "notify"]

# What the URL may name, filled in by the worker: only in its path and query, never its host.
URL_PLACEHOLDERS = frozenset({"service", "version", "stage", "rollout_id", "hook"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", IDEMPOTENCY_HEADER.lower()}
    | {name.lower() for name in SIGNED_HEADERS}
)


def _url(v: str) -> str:
    """An http(s) URL whose scheme and host are written out; placeholders only after the host."""
    found = text.too_long(v, text.MAX_TEXT_CHARS, "a hook's url may have")
    if found:
        raise ValueError(found)
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text.quote(v)}: a hook's url must start with http:// or https://")
    if not parts.hostname or "$" in parts.netloc:
        raise ValueError(
            f"{text.quote(v)}: write the host (and port) out in full: placeholders may only"
            " stand in the path or the query, so a plan cannot send a payload elsewhere"
        )
    if parts.username or parts.password:
        raise ValueError(
            f"{text.quote(v)}: no user or password in a hook's url; put credentials in a"
            " header read from an environment variable (headers_env)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError(f"{text.quote(v)}: the port must be 1-65535") from None
    unknown = sorted(text.placeholders_in(v) - URL_PLACEHOLDERS)
    if unknown:
        known = ", ".join(f"${n}" for n in sorted(URL_PLACEHOLDERS))
        raise ValueError(f"{text.quote(v)}: unknown placeholder(s) {unknown}: use {known}")
    if re.search(r"\$(?!\w|\{\w+\})", v):
        raise ValueError(f"{text.quote(v)}: a '$' that is no placeholder: write $name or ${{name}}")
    refused = url_refusal(v)
    if refused is not None:
        raise ValueError(f"{text.quote(v)}: {refused}")
    return v


HookUrl = Annotated[str, AfterValidator(_url)]


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    """Header names a plan may set: well formed, and none the rollout sets itself."""
    for name in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{text.quote(name)} is not a header name: use letters, digits, -")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the rollout itself: remove it")
    return headers


HeadersEnv = Annotated[dict[str, EnvName], AfterValidator(_header_names)]


class Hook(Strict):
    """One hook of a plan's ``hooks`` list.

    ``gate``: must answer 2xx to go on; 202 with ``{"retry_after": N}`` is asked again in N
    seconds (a durable timer), for up to ``max_wait``. ``check``: a failure counts like a
    failing metric gate (``failure_limit`` in a row, then ``on_fail``). ``notify``: told,
    never waited on for a verdict.
    """

    name: Annotated[str, text.safe_name("hook name")]
    on: HookPoint
    url: HookUrl
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    mode: HookMode = "gate"
    timeout: Duration = Field(default=timedelta(seconds=10), description="for one request")
    retries: int = Field(default=2, ge=0, le=20, description="more tries on errors and 5xx")
    headers_env: HeadersEnv = Field(
        default_factory=dict, description="header name -> environment variable with its value"
    )
    secret_env: EnvName | None = Field(
        default=None,
        description="environment variable with the signing secret (several whsec_ ones: rotation)",
    )
    stages: list[Annotated[str, text.safe_name("stage name")]] | None = Field(
        default=None, description="before_stage: only before these stages (default: every one)"
    )
    events: list[EventKind] = Field(
        default_factory=list, description="on: event: the events this hook is told of"
    )
    max_wait: Duration = Field(
        default=timedelta(hours=24), description="gate: longest a 202 may hold the rollout"
    )
    failure_limit: int = Field(default=1, ge=1, le=1000, description="check: failures in a row")
    on_fail: Literal["rollback", "pause", "notify"] = Field(
        default="rollback", description="check: what its failure_limit-th failure does"
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML's) reads a bare ``on:`` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("on", mode="before")
    @classmethod
    def _known_point(cls, v: Any) -> Any:
        points = HookPoint.__args__  # type: ignore[attr-defined]
        if v not in points:
            raise ValueError(f"{text.quote(v)} is not a hook point: use {', '.join(points)}")
        return v

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, v: Any) -> Any:
        if v not in ("gate", "check", "notify"):
            raise ValueError(f"{text.quote(v)} is not a hook mode: use gate, check or notify")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Hook:
        problems = []
        if self.on == "event":
            if not self.events:
                problems.append("on: event needs events: the events to tell, e.g. [rolled_back]")
            if self.mode != "notify":
                problems.append("on: event hooks are told, not asked: set mode: notify")
        elif self.events:
            problems.append("events apply to on: event hooks only: remove it")
        if self.stages is not None and self.on != "before_stage":
            problems.append("stages applies to on: before_stage hooks only: remove it")
        if self.mode != "check" and (self.failure_limit != 1 or self.on_fail != "rollback"):
            problems.append("failure_limit and on_fail apply to mode: check hooks only")
        if self.on in ("on_rollback", "after_promote") and self.mode == "gate":
            problems.append(f"on: {self.on} comes too late to hold: use mode: check or notify")
        if self.timeout <= timedelta(0) or self.timeout > timedelta(minutes=10):
            problems.append("timeout must be more than 0 and at most 10m")
        if problems:
            raise ValueError(f"hook {self.name!r}: " + "; ".join(problems))
        return self

    def runs_before(self, stage: str) -> bool:
        return self.on == "before_stage" and (self.stages is None or stage in self.stages)


class Smoke(Strict):
    """The built-in smoke check: requests straight to the canary before it gets user traffic."""

    url: HookUrl = Field(description="the canary's own address, or blue-green's preview route")
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str = Field(default="", max_length=1000, description="a fragment of the body")
    requests: int = Field(default=3, ge=1, le=100)
    timeout: Duration = Field(default=timedelta(seconds=5), description="for one request")
    headers_env: HeadersEnv = Field(default_factory=dict)


def hook_problems(hooks: list[Hook], stage_names: list[str]) -> list[str]:
    """Hooks a plan cannot hold: repeated names, stages it does not have."""
    problems = []
    names = [h.name for h in hooks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"hooks: names must be unique, repeated: {', '.join(repeated)}")
    for i, hook in enumerate(hooks):
        for stage in hook.stages or []:
            if stage not in stage_names:
                listed = text.some(stage_names, 10)
                problems.append(f"hooks.{i}.stages: unknown stage {stage!r} (stages: {listed})")
    return problems


class VerdictBrief(BaseModel):
    """A gate's last verdict as a hook's payload carries it."""

    model_config = ConfigDict(defer_build=True)

    gate: str
    outcome: str
    value: float | None = None
    reason: str = ""


class HookPayload(BaseModel):
    """What a hook receives, as JSON (version 1). Fields are only ever added within a version."""

    model_config = ConfigDict(defer_build=True)

    version: Literal[1] = 1
    hook: str
    mode: HookMode
    phase: str = Field(description="the hook point, or the event for on: event hooks")
    rollout_id: str = Field(description="the rollout's workflow id")
    run_id: str = Field(description="the rollout's first run id: one per rollout")
    service: str
    versions: dict[str, str] = Field(description="stable and canary server names, and label")
    stage: str = Field(description="the stage the rollout is in")
    stage_index: int
    current_weight: int
    next_weight: int | None = None
    next_stage: str = Field(default="", description="before_stage: the stage about to start")
    verdicts: list[VerdictBrief] = Field(default_factory=list)
    reason: str = ""
    attempt: int = Field(default=1, description="1 on the first ask; one more per ask after 202")
    idempotency_key: str = Field(description="the same for every ask and retry of one call")
    at: datetime


class HookCall(BaseModel):
    """One call for the activity to make: the hook (names of secrets only) and its payload."""

    model_config = ConfigDict(defer_build=True)

    hook: Hook
    payload: HookPayload


class HookAnswer(BaseModel):
    """What the receiver said: its status, a 202's retry_after, and the start of its body."""

    model_config = ConfigDict(defer_build=True)

    status: int
    retry_after_s: float | None = None
    excerpt: str = ""
    error: str = Field(default="", description="why no answer came, when none did")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.status != 202 and not self.error

    @property
    def later(self) -> bool:
        return self.status == 202 and not self.error

    def describe(self) -> str:
        if self.error:
            return self.error
        excerpt = f": {self.excerpt}" if self.excerpt else ""
        return f"answered {self.status}{excerpt}"


def payload_body(payload: HookPayload) -> bytes:
    """The exact bytes sent, and signed: compact JSON with sorted keys."""
    data = payload.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
