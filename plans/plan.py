"""The rollout plan: what a release engineer writes in YAML, validated before anything runs."""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, model_validator

from plans import text
from plans.bluegreen import BlueGreen
from plans.durations import format_duration
from plans.gates import Gate, GateBase
from plans.governance.approvals import ApprovalRule, Principal
from plans.governance.windows import Windows
from plans.hooks import MAX_HOOKS, Hook, Smoke, hook_problems
from plans.notify import Notify
from plans.routers import ROUTER_KINDS, Router
from plans.sources import MetricsSource
from plans.stage import Stage
from plans.text import Strict
from plans.workflow_ids import rollout_workflow_id


def _gate_count(v: Any) -> Any:
    fix = "keep the gates that decide a rollout"
    return text.at_most(v, text.MAX_GATES, "gates", "a plan may have", fix)


def _hook_count(v: Any) -> Any:
    return text.at_most(v, MAX_HOOKS, "hooks", "a plan may have", "keep the hooks that matter")


def _stage_count(v: Any) -> Any:
    return text.at_most(v, text.MAX_STAGES, "stages", "a plan may have", "use fewer, longer stages")


class Plan(Strict):
    """A whole rollout: which service, which servers, how traffic moves and what must hold."""

    service: Annotated[str, text.safe_name("name")]
    version: Annotated[str, text.safe_name("version label")] = Field(
        default="canary", description="the new version's label, for people"
    )
    stable: Annotated[str, text.safe_name("name")] = Field(
        description="the stable server's name, as the router names it"
    )
    canary: Annotated[str, text.safe_name("name")] = Field(
        description="the canary server's name, as the router names it"
    )
    router: Router
    metrics: MetricsSource = Field(
        description="where gates read their data, unless they name a source"
    )
    sources: dict[Annotated[str, text.safe_name("source name")], MetricsSource] = Field(
        default_factory=dict, description="more sources by name, for gates that name one"
    )
    gates: Annotated[list[Gate], BeforeValidator(_gate_count)] = Field(default_factory=list)
    strategy: Literal["canary", "blue_green"] = Field(
        default="canary", description="canary: stage by stage; blue_green: preview, then one flip"
    )
    blue_green: BlueGreen | None = Field(
        default=None, description="the preview, promotion and rollback of a blue_green plan"
    )
    stages: Annotated[list[Stage], BeforeValidator(_stage_count)] = Field(default_factory=list)
    notify: Notify = Field(default_factory=Notify)
    windows: Windows | None = Field(
        default=None, description="when traffic may increase: allow and deny windows"
    )
    hooks: Annotated[list[Hook], BeforeValidator(_hook_count)] = Field(
        default_factory=list, description="external gates, checks and receivers (plans.hooks)"
    )
    smoke: Smoke | None = Field(
        default=None, description="requests to the canary before it gets any user traffic"
    )
    approvers: Annotated[list[Principal], Field(max_length=100)] = Field(
        default_factory=list,
        description="principals or groups of the worker's allowed_signers who may go forward",
    )
    approvals: int = Field(
        default=1, ge=1, le=10, description="distinct verified people an approve or promote needs"
    )
    not_by_starter: bool = Field(
        default=False, description="whoever started the rollout may not move it forward"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        problems = []
        if self.stable == self.canary:
            problems.append(f"stable and canary are both {self.stable!r}: name two servers")
        if self.strategy == "blue_green":
            problems += self._blue_green_stages()
        elif self.blue_green is not None:
            problems.append("blue_green: set strategy: blue_green to use it, or remove it")
        if "stages" not in self.model_fields_set and self.strategy == "canary":
            problems.append("stages: missing: this field is required")
        elif not self.stages and not problems:
            problems.append("stages: list at least one stage")
        names = [g.name for g in self.gates]
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            problems.append(f"gates: names must be unique, repeated: {', '.join(dupes)}")
        dupes = sorted(n for n, count in Counter(s.name for s in self.stages).items() if count > 1)
        if dupes:
            problems.append(f"stages: names must be unique, repeated: {', '.join(dupes)}")
        for i, (prev, cur) in enumerate(zip(self.stages, self.stages[1:], strict=False), 1):
            # Blue-green keeps green at 100% while blue stays ready: its stages are made here.
            if cur.weight <= prev.weight and self.strategy == "canary":
                problems.append(
                    f"stages.{i}.weight: {cur.weight} does not increase on the previous stage's"
                    f" {prev.weight}: weights must go up stage by stage"
                )
        known = set(names)
        for i, stage in enumerate(self.stages):
            for gate in stage.gates or []:
                if gate not in known:
                    listed = text.some(names, 10) or "none defined"
                    problems.append(
                        f"stages.{i}.gates: unknown gate {text.quote(gate)} (gates: {listed})"
                    )
        problems += self._match_problems()
        problems += self._query_problems()
        problems += self._gate_stage_problems()
        problems += hook_problems(self.hooks, [s.name for s in self.stages])
        problems += self._approval_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _blue_green_stages(self) -> list[str]:
        """Fill in a blue-green plan's stages; a plan read back carries the same ones."""
        if self.blue_green is None:
            return ["blue_green: a blue_green plan needs this section (preview, promotion...)"]
        problems = self.blue_green.problems(self.gates)
        if problems:
            return problems
        stages = self.blue_green.stages(self.gates)
        if self.stages and self.stages != stages:
            return [
                "stages: a blue_green plan takes its stages from blue_green (preview,"
                " post-promotion, keep-blue): remove stages"
            ]
        # The plan is frozen once validated; this is still its validation.
        object.__setattr__(self, "stages", stages)
        return []

    def _approval_problems(self) -> list[str]:
        """``approvals`` and ``not_by_starter`` only mean something with ``approvers``."""
        problems = []
        if not self.approvers:
            if self.approvals > 1:
                problems.append(
                    f"approvals: {self.approvals} people from whom? list them (or their groups)"
                    " in approvers"
                )
            if self.not_by_starter:
                problems.append("not_by_starter: list the people who may approve in approvers")
        dupes = sorted(n for n, count in Counter(self.approvers).items() if count > 1)
        if dupes:
            problems.append(f"approvers: listed twice: {', '.join(dupes)}")
        return problems

    @property
    def approval_rule(self) -> ApprovalRule:
        """Who may move this rollout forward, as the workflow applies it."""
        return ApprovalRule(
            approvers=list(self.approvers),
            approvals=self.approvals,
            not_by_starter=self.not_by_starter,
        )

    def _match_problems(self) -> list[str]:
        """Stages with ``match`` on a router that cannot route by header or cookie."""
        matching = [i for i, stage in enumerate(self.stages) if stage.match is not None]
        if not matching:
            return []
        if not self.router.supports_match:
            able = sorted(k for k, m in ROUTER_KINDS.items() if getattr(m, "supports_match", False))
            fix = f"remove match or use {'/'.join(able)}" if able else "remove match"
            return [
                f"stages.{i}.match: router {self.router.kind} cannot route by header or"
                f" cookie; {fix}"
                for i in matching
            ]
        problems = [f"router.{problem}" for problem in self.router.match_problems()]
        for i in matching:
            match = self.stages[i].match
            assert match is not None
            if why := self.router.match_refusal(match):
                problems.append(f"stages.{i}.match: {why}")
        return problems

    def _query_problems(self) -> list[str]:
        """Gates whose queries their metrics source cannot run as written."""
        problems = []
        given = list(self.placeholders())
        for i, gate in enumerate(self.gates):
            if gate.source is not None and gate.source not in self.sources:
                named = text.some(sorted(self.sources), 10) or "none defined"
                problems.append(
                    f"gates.{i}.source: unknown source {text.quote(gate.source)} (sources:"
                    f" {named}): name one of the plan's sources, or leave it out for metrics"
                )
                continue
            source = self.source_of(gate)
            presets = source.presets
            if gate.preset is not None and gate.preset not in presets:
                written = ", ".join(sorted(presets)) or "none"
                problems.append(
                    f"gates.{i}.preset: {gate.preset!r} is not written for a"
                    f" {source.kind} source (its presets: {written})"
                )
            for field, problem in source.query_problems(gate, given):
                problems.append(f"gates.{i}.{field}: {problem}")
            if gate.compares:
                for problem in source.version_problems(gate):
                    problems.append(f"gates.{i}: gate {gate.name!r}: {problem}")
        return problems

    def source_of(self, gate: GateBase) -> MetricsSource:
        """The source a gate reads: the one it names, else the plan's ``metrics``."""
        if gate.source is None:
            return self.metrics
        return self.sources[gate.source]

    def _gate_stage_problems(self) -> list[str]:
        """Gates that cannot judge a stage they apply to: windows past the bake, no stable."""
        problems: list[str] = []
        # Each gate's windows are read once, not once per stage: a stage then looks up, per
        # field, the first window longer than its bake among the ever-longer ones.
        steps = [
            _longer_and_longer(
                (self.source_of(gate).windows(gate) if self._known_source(gate) else [])
                + gate.windows()
            )
            for gate in self.gates
        ]
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

    def _known_source(self, gate: GateBase) -> bool:
        return gate.source is None or gate.source in self.sources

    @property
    def workflow_id(self) -> str:
        return rollout_workflow_id(self.service)

    @property
    def target_lease_id(self) -> str:
        """Workflow id of the lease on this plan's traffic target; one holder at a time."""
        return target_lease_id(self.router)

    def gates_for(self, stage: Stage) -> list[Gate]:
        return [self.gates[i] for i in self._gate_indexes(stage)]

    def _gate_indexes(self, stage: Stage) -> list[int]:
        """Positions in ``gates`` of the gates a stage checks, in the plan's order."""
        if stage.gates is None:
            return list(range(len(self.gates)))
        named = set(stage.gates)
        return [i for i, g in enumerate(self.gates) if g.name in named]

    def placeholders(self) -> dict[str, str]:
        """The values a gate's queries name: the plan's versions and service, the router's own."""
        values = {"canary": self.canary, "stable": self.stable, "service": self.service}
        return values | self.router.placeholders()

    def total_bake(self) -> timedelta:
        return sum((s.bake for s in self.stages), timedelta())


def target_lease_id(router: Router) -> str:
    """Workflow id of the lease on a router's traffic target (`rollout status` looks it up too)."""
    digest = hashlib.sha256(router.target_key().encode()).hexdigest()[:16]
    return f"target-{router.kind}-{digest}"


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


def written_hosts(plan: Plan) -> list[tuple[str, str]]:
    """(field, host) of each URL a plan writes out for the worker to send requests to.

    Metric sources, hooks and the smoke check; a host with a placeholder is known only when
    the worker fills it in, and is checked then.
    """
    urls = [("metrics.url", getattr(plan.metrics, "url", None))]
    urls += [(f"sources.{n}.url", getattr(s, "url", None)) for n, s in plan.sources.items()]
    urls += [(f"hooks.{i}.url", hook.url) for i, hook in enumerate(plan.hooks)]
    if plan.smoke is not None:
        urls.append(("smoke.url", plan.smoke.url))
    found = []
    for field, url in urls:
        host = urlsplit(url).hostname if isinstance(url, str) else None
        if host and "$" not in host:
            found.append((field, host))
    return found
