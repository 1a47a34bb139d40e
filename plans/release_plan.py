"""A release plan: one release of a service across targets (environments, regions), in waves.

The plan is today's rollout plan plus three fields: ``targets`` (each its own router and
metrics, or the plan's with placeholders such as ``$region`` filled in), ``waves`` (which
targets go together, in order) and ``on_target_failure``. Each target's rollout plan is
built and validated here, at load time, so a release never starts with a target that could
not run.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from plans import text
from plans.durations import Duration
from plans.errors import PlanError
from plans.governance.approvals import ApprovalRule
from plans.loading import load_plan_data, location, parse_plan
from plans.plan import Plan
from plans.text import Strict

RELEASE_PLAN_FIELDS = frozenset({"targets", "waves", "on_target_failure"})
MAX_TARGETS = 50
RELEASE_ID_PREFIX = "release-"
# Placeholders the plan, its router or its sources fill in already: a target may not redefine them.
RESERVED_PLACEHOLDERS = frozenset(
    {"canary", "stable", "service", "backend", "target", "window", "cluster", "flag", "key"}
)
# What a target may set beside its placeholders: the fields of the plan it replaces.
TARGET_FIELDS = ("router", "metrics", "sources", "stable", "canary", "stages")
# The parts of a plan whose text is filled with a target's placeholders.
FILLED_FIELDS = ("router", "metrics", "sources", "gates", "stable", "canary")

Name = Annotated[str, text.safe_name("target name")]


class ReleaseTarget(Strict):
    """One target as the plan writes it; what it leaves out comes from the plan."""

    router: dict[str, Any] | None = Field(default=None, description="this target's router")
    metrics: dict[str, Any] | None = Field(default=None, description="this target's metrics")
    sources: dict[str, Any] | None = None
    stable: str | None = None
    canary: str | None = None
    stages: list[Any] | None = Field(default=None, description="this target's own stages")
    placeholders: dict[
        Annotated[str, text.safe_name("placeholder name")],
        Annotated[str, text.safe_name("placeholder value")],
    ] = Field(default_factory=dict, description="values for $name in queries and the router")


class Wave(Strict):
    """Targets that go out together, after every earlier wave promoted."""

    targets: list[Name] = Field(min_length=1)
    approval: bool = Field(default=False, description="wait for `rollout approve` to start")
    max_parallel: int | None = Field(default=None, ge=1, description="targets running at once")
    bake_between: Duration = Field(
        default=timedelta(0), description="wait this long after the previous wave promoted"
    )
    stages: list[Any] | None = Field(default=None, description="stages for this wave's targets")


class _ReleasePlanSpec(Strict):
    targets: dict[Name, ReleaseTarget]
    waves: list[Wave] = Field(min_length=1)
    on_target_failure: Literal["halt", "rollback_all"] = "halt"


class ReleasePlan(Strict):
    """A validated release: each target's rollout plan, the waves and the failure policy."""

    service: str
    version: str
    targets: dict[str, Plan]
    waves: list[Wave]
    on_target_failure: Literal["halt", "rollback_all"] = "halt"

    @property
    def workflow_id(self) -> str:
        return release_workflow_id(self.service)

    def child_id(self, target: str) -> str:
        return target_workflow_id(self.service, target)

    @property
    def approval_rule(self) -> ApprovalRule:
        """Who may move the release forward: the plan's approvers, alike for every target."""
        return next(iter(self.targets.values())).approval_rule

    def wave_of(self, target: str) -> int:
        return next(i for i, wave in enumerate(self.waves) if target in wave.targets)


def release_workflow_id(service: str) -> str:
    """The workflow id of a service's release: one running release per service."""
    return f"{RELEASE_ID_PREFIX}{service}"


def target_workflow_id(service: str, target: str) -> str:
    """The workflow id of one target's rollout within a release."""
    return f"rollout-{service}-{target}"


def is_release_plan(data: Any) -> bool:
    """Whether plan data describes a release across targets rather than one rollout."""
    return isinstance(data, dict) and bool(RELEASE_PLAN_FIELDS & set(data))


def load_any(path: str) -> Plan | ReleasePlan:
    """A plan file: one rollout's plan, or a release's when it names targets and waves."""
    data = load_plan_data(path)
    return parse_release_plan(data, path) if is_release_plan(data) else parse_plan(data, path)


def parse_release_plan(data: Any, source: str = "plan") -> ReleasePlan:
    """Validate a release plan; raise PlanError naming each field as the YAML does."""
    if not isinstance(data, dict):
        raise PlanError(["the plan must be a mapping of fields with targets and waves"], source)
    try:
        spec = _ReleasePlanSpec.model_validate(
            {k: v for k, v in data.items() if k in RELEASE_PLAN_FIELDS}
        )
    except ValidationError as error:
        problems = [f"{location(e['loc'])}: {_message(e)}" for e in error.errors(include_url=False)]
        raise PlanError(problems, source) from None
    problems = _shape_problems(spec)
    if problems:
        raise PlanError(problems, source)
    base = {k: v for k, v in data.items() if k not in RELEASE_PLAN_FIELDS}
    plans: dict[str, Plan] = {}
    for name, target in spec.targets.items():
        wave = spec.waves[next(i for i, w in enumerate(spec.waves) if name in w.targets)]
        try:
            plans[name] = parse_plan(_target_data(base, target, wave), source)
        except PlanError as error:
            problems += [f"targets.{name}: {p}" for p in error.problems]
    problems += _shared_routers(plans)
    if problems:
        raise PlanError(problems, source)
    first = next(iter(plans.values()))
    return ReleasePlan(
        service=first.service,
        version=first.version,
        targets=plans,
        waves=spec.waves,
        on_target_failure=spec.on_target_failure,
    )


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field: remove it or check its spelling"
    if error["type"] == "missing":
        return "missing: this field is required"
    return str(error["msg"]).removeprefix("Value error, ")


def _shape_problems(spec: _ReleasePlanSpec) -> list[str]:
    """Targets and waves that do not fit together: each target in exactly one wave."""
    problems = []
    if not spec.targets:
        problems.append("targets: name at least one target")
    if len(spec.targets) > MAX_TARGETS:
        problems.append(
            f"targets: {len(spec.targets)} targets, more than the {MAX_TARGETS} a release may"
            " have: split it into several releases"
        )
    listed = Counter(t for wave in spec.waves for t in wave.targets)
    for i, wave in enumerate(spec.waves):
        for target in wave.targets:
            if target not in spec.targets:
                known = text.some(sorted(spec.targets), 10) or "none defined"
                problems.append(f"waves.{i}.targets: unknown target {target!r} (targets: {known})")
    for target, count in sorted(listed.items()):
        if count > 1 and target in spec.targets:
            problems.append(f"waves: target {target!r} is in {count} waves: list it in one")
    for target in spec.targets:
        if target not in listed:
            problems.append(f"targets.{target}: in no wave: list it in one of the waves")
    for target, found in spec.targets.items():
        for name in sorted(RESERVED_PLACEHOLDERS & set(found.placeholders)):
            problems.append(
                f"targets.{target}.placeholders.{name}: ${name} is filled in by the plan"
                " itself: choose another name"
            )
    return problems


def _target_data(base: dict[str, Any], target: ReleaseTarget, wave: Wave) -> dict[str, Any]:
    """The rollout plan of one target: the plan, the target's own fields, its placeholders."""
    data = dict(base)
    if wave.stages is not None:
        data["stages"] = wave.stages
    for field in TARGET_FIELDS:
        value = getattr(target, field)
        if value is not None:
            data[field] = value
    for field in FILLED_FIELDS:
        if field in data:
            data[field] = _filled(data[field], target.placeholders)
    return data


def _filled(value: Any, values: dict[str, str]) -> Any:
    """``value`` with the target's placeholders filled in; others stay for the rollout."""
    if isinstance(value, str):
        return text.PLACEHOLDER.sub(lambda m: values.get(m[1] or m[2], m[0]), value)
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, values) for k, v in value.items()}
    return value


def _shared_routers(plans: dict[str, Plan]) -> list[str]:
    """Two targets moving the same router target would undo each other's shifts."""
    seen: dict[str, str] = {}
    problems = []
    for name, plan in plans.items():
        key = plan.router.target_key()
        if key in seen:
            problems.append(
                f"targets.{name}.router: the same router target as {seen[key]!r}"
                f" ({plan.router.describe()}): give each target its own"
            )
        else:
            seen[key] = name
    return problems


RESTORE_STAGE = "restore-stable"


def restore_plan(plan: Plan) -> Plan:
    """A rollout that puts a promoted target back on its stable version, through a rollout.

    The two servers swap roles: the old stable becomes the "canary" that one stage at 100%
    takes all traffic to, with the router read back and owned as in any rollout. No gates:
    the way back is never held by the numbers that sent it back.
    """
    data = plan.model_dump(mode="json", exclude={"blue_green", "strategy", "gates"})
    data["stable"], data["canary"] = plan.canary, plan.stable
    data["stages"] = [{"name": RESTORE_STAGE, "weight": 100, "bake": "0s", "check_every": "1s"}]
    return Plan.model_validate(data)
