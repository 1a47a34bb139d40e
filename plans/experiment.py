"""An experiment plan: two to four variants side by side, the winner rolled forward.

A plan with an ``experiment`` section runs its variants at set shares instead of stages.
The control is the version serving now; every check judges each other variant against it,
the ``primary`` gate (a sequential test) to find a winner, the ``guardrails`` to take a
variant out at once when one fails on it. The experiment stops when a variant is shown
better than the control, or at ``max_duration``, and rolls the winner forward to 100% (or
keeps the control at 100% when none won).

The rest of the plan (service, router, metrics, sources, gates, approvers) is a rollout
plan's, and is validated as one: the control as its stable, a variant as its canary, one
stage as long as ``max_duration``.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from plans import text
from plans.durations import Duration, format_duration
from plans.errors import PlanError
from plans.gates import Gate, SequentialGate
from plans.governance.approvals import ApprovalRule
from plans.loading import load_plan_data, location, parse_plan, with_templates
from plans.plan import Plan
from plans.release_plan import ReleasePlan, is_release_plan, parse_release_plan
from plans.routers import Router
from plans.text import Strict

EXPERIMENT_FIELD = "experiment"
MIN_VARIANTS, MAX_VARIANTS = 2, 4
# What a rollout plan has that an experiment does not take, and why.
NOT_IN_EXPERIMENTS = {
    "stable": "the experiment's control is the version serving now",
    "canary": "the variants name the servers (flagd: the flag's variants; Envoy: the route's"
    " clusters)",
    "stages": "an experiment runs its variants at set shares instead of stages",
    "strategy": "an experiment runs its variants at set shares instead of stages",
    "blue_green": "an experiment runs its variants at set shares instead of stages",
    "windows": "an experiment does not wait for release windows",
    "hooks": "an experiment runs no hooks",
    "smoke": "an experiment runs no smoke check",
    "template": "write an experiment's fields out",
}
STAGE_NAME = "experiment"


class Variant(Strict):
    """One variant: a server of the router's backend (HAProxy) or a variant of its flag."""

    name: Annotated[str, text.safe_name("variant name")]
    share: int = Field(description="percent of the traffic it gets while the experiment runs")

    @field_validator("share", mode="before")
    @classmethod
    def _share_type(cls, v: object) -> object:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"share {text.quote(v)} is not a whole percent: write 1 to 99")
        return v

    @field_validator("share")
    @classmethod
    def _share(cls, v: int) -> int:
        if not 1 <= v <= 99:
            raise ValueError(f"share {v} is out of range: each variant takes 1 to 99 percent")
        return v


class Experiment(Strict):
    """The ``experiment`` section: the variants, what picks the winner, what guards them."""

    variants: list[Variant] = Field(description="2 to 4 variants; their shares add up to 100")
    control: Annotated[str, text.safe_name("variant name")] = Field(
        description="the variant serving now: the others are judged against it"
    )
    primary: Annotated[str, text.safe_name("gate name")] = Field(
        description="the plan's gate (kind: sequential) whose metric picks the winner"
    )
    guardrails: list[Annotated[str, text.safe_name("gate name")]] | None = Field(
        default=None,
        description="the plan's gates that take a variant out when they fail on it"
        " (default: every gate but the primary)",
    )
    check_every: Duration = timedelta(minutes=1)
    max_duration: Duration = Field(
        default=timedelta(days=7), description="stop here; the control stays if none won"
    )

    @property
    def test_span(self) -> timedelta:
        """The span the sequential tests' sharper look covers, as a stage's: the longest the
        experiment runs and one check more, for the check that ends it."""
        return self.max_duration + self.check_every

    @field_validator("check_every")
    @classmethod
    def _check_every(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError(f"check_every {format_duration(v)} is too short: use 1s or more")
        return v

    def problems(self, gates: list[dict[str, Any]]) -> list[str]:
        """What does not fit: the variants, the shares, the gates it names."""
        problems = []
        names = [v.name for v in self.variants]
        if not MIN_VARIANTS <= len(names) <= MAX_VARIANTS:
            problems.append(
                f"experiment.variants: {len(names)} variants: run {MIN_VARIANTS} to"
                f" {MAX_VARIANTS} (the control and one to three others)"
            )
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            problems.append(f"experiment.variants: names must be unique, repeated: {dupes}")
        total = sum(v.share for v in self.variants)
        if total != 100:
            shares = " + ".join(str(v.share) for v in self.variants)
            problems.append(
                f"experiment.variants: the shares add up to {total} ({shares}): make them"
                " add up to 100"
            )
        if self.control not in names:
            problems.append(
                f"experiment.control: {self.control!r} is none of the variants"
                f" ({', '.join(names)}): name the variant serving now"
            )
        known = {str(g.get("name")): g for g in gates if isinstance(g, dict)}
        listed = text.some(sorted(known), 10) or "none defined"
        primary = known.get(self.primary)
        if primary is None:
            problems.append(
                f"experiment.primary: unknown gate {self.primary!r} (gates: {listed}):"
                " name the plan's gate whose metric picks the winner"
            )
        elif primary.get("kind") != "sequential":
            problems.append(
                f"experiment.primary: gate {self.primary!r} is kind"
                f" {primary.get('kind', 'threshold')}: the primary gate must be kind:"
                " sequential, whose interval shows a variant better than the control"
            )
        for i, name in enumerate(self.guardrails or []):
            if name not in known:
                problems.append(
                    f"experiment.guardrails.{i}: unknown gate {name!r} (gates: {listed})"
                )
            elif name == self.primary:
                problems.append(
                    f"experiment.guardrails.{i}: {name!r} is the primary gate: list it once"
                )
        if self.max_duration < self.check_every:
            problems.append(
                f"experiment.max_duration: {format_duration(self.max_duration)} is shorter than"
                f" check_every {format_duration(self.check_every)}: nothing would be judged"
            )
        return problems

    @property
    def challengers(self) -> list[str]:
        """The variants judged against the control, in the plan's order."""
        return [v.name for v in self.variants if v.name != self.control]

    @property
    def shares(self) -> dict[str, int]:
        return {v.name: v.share for v in self.variants}


class ExperimentPlan(Strict):
    """A validated experiment: its variants and the rollout plan its gates are judged in."""

    experiment: Experiment
    plan: Plan = Field(description="the rest of the plan, the control as stable")

    @property
    def service(self) -> str:
        return self.plan.service

    @property
    def version(self) -> str:
        return self.plan.version

    @property
    def router(self) -> Router:
        return self.plan.router

    @property
    def workflow_id(self) -> str:
        """A service runs one rollout or one experiment at a time, under one id."""
        return self.plan.workflow_id

    @property
    def target_lease_id(self) -> str:
        return self.plan.target_lease_id

    @property
    def approval_rule(self) -> ApprovalRule:
        return self.plan.approval_rule

    def gate(self, name: str) -> Gate:
        return next(g for g in self.plan.gates if g.name == name)

    @property
    def primary(self) -> SequentialGate:
        gate = self.gate(self.experiment.primary)
        assert isinstance(gate, SequentialGate)
        return gate

    @property
    def guardrails(self) -> list[Gate]:
        named = self.experiment.guardrails
        primary = self.experiment.primary
        if named is None:
            return [g for g in self.plan.gates if g.name != primary]
        return [g for g in self.plan.gates if g.name in named]

    def placeholders(self, variant: str) -> dict[str, str]:
        """A variant judged as the canary, the control as the stable."""
        return self.plan.placeholders() | {"canary": variant, "stable": self.experiment.control}


def is_experiment_plan(data: Any) -> bool:
    """Whether plan data describes an experiment rather than a rollout."""
    return isinstance(data, dict) and EXPERIMENT_FIELD in data


def parse_experiment_plan(data: Any, source: str = "plan") -> ExperimentPlan:
    """Validate an experiment plan; raise PlanError naming each field as the YAML does."""
    if not isinstance(data, dict):
        raise PlanError(["the plan must be a mapping of fields with an experiment"], source)
    problems = [
        f"{field}: {why}: remove it" for field, why in NOT_IN_EXPERIMENTS.items() if field in data
    ]
    try:
        experiment = Experiment.model_validate(data.get(EXPERIMENT_FIELD))
    except ValidationError as error:
        problems += [
            f"{location((EXPERIMENT_FIELD, *e['loc']))}: {_message(e)}"
            for e in error.errors(include_url=False)
        ]
        raise PlanError(problems, source) from None
    written = data.get("gates")
    gates: list[dict[str, Any]] = written if isinstance(written, list) else []
    problems += experiment.problems(gates)
    if problems:
        raise PlanError(problems, source)
    try:
        plan = parse_plan(_rollout_data(data, experiment), source)
    except PlanError as error:
        raise PlanError([_in_experiment(p) for p in error.problems], source) from None
    return ExperimentPlan(experiment=experiment, plan=plan)


def _rollout_data(data: dict[str, Any], experiment: Experiment) -> dict[str, Any]:
    """The rollout plan the experiment's gates are judged in: one stage, the control stable."""
    rest = {k: v for k, v in data.items() if k != EXPERIMENT_FIELD}
    judged = [experiment.primary, *(experiment.guardrails or [])]
    stage: dict[str, Any] = {
        "name": STAGE_NAME,
        "weight": 100 - experiment.shares[experiment.control],
        "bake": f"{int(experiment.max_duration.total_seconds())}s",
        "check_every": f"{int(experiment.check_every.total_seconds())}s",
    }
    if experiment.guardrails is not None:
        stage["gates"] = judged
    return rest | {
        "stable": experiment.control,
        "canary": experiment.challengers[0],
        "stages": [stage],
    }


def _in_experiment(problem: str) -> str:
    """A problem of the rollout plan, said of the experiment where it comes from there."""
    return problem.replace(
        f"stage {STAGE_NAME!r} (stages.0.bake)", "the experiment (experiment.max_duration)"
    ).replace("stages.0.gates", "experiment.guardrails")


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field: remove it or check its spelling"
    if error["type"] == "missing":
        return "missing: this field is required"
    return str(error["msg"]).removeprefix("Value error, ")


def load_any_plan(path: str) -> Plan | ReleasePlan | ExperimentPlan:
    """A plan file: a rollout's, a release's (targets and waves) or an experiment's; a
    templates folder is checked and made absolute (relative to the file)."""
    data = load_plan_data(path)
    if is_experiment_plan(data):
        found = parse_experiment_plan(data, path)
        return found.model_copy(update={"plan": with_templates(found.plan, Path(path))})
    if is_release_plan(data):
        return parse_release_plan(data, path)
    return with_templates(parse_plan(data, path), Path(path))
