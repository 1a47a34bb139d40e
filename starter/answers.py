"""What `rollout ... --json` prints: one model per command, and the JSON Schemas made from them.

Each command with ``--json`` prints one JSON object (``start --follow --json`` one a line).
The schemas are kept in ``docs/schemas/`` (``SCHEMAS`` names them); a test checks that they
still match these models and that each command's real output fits its schema, so a change
to what a script reads is a change someone made on purpose. Fields may be added; none is
renamed or removed without a new schema. Regenerate them with
``.venv/bin/python -m starter.answers docs/schemas``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from activities.report.review import Review
from client.records import TemporalRecords
from devstack.info import StackInfo
from plans.governance.freezes import Freeze, RemovedFreeze
from plans.runtime.release import ReleaseCommandRecord, ReleaseStatus
from plans.runtime.state import CommandRecord
from plans.runtime.traffic import ObservedStatus

# -- validate and init ------------------------------------------------------------------------


class GatePower(BaseModel):
    """What one comparing gate can detect in one stage (`validate --traffic` / `--live`)."""

    gate: str
    test: str = Field(description="sequential rate, sequential latency, two-proportion...")
    canary_requests: float | None = Field(description="in the bake (sequential) or the window")
    stable_requests: float | None
    detectable: float | None = Field(
        description="the smallest regression shown, as canary / stable (a rate ratio, or"
        " every request's latency ratio); null when none within x100 or not estimated"
    )
    shown: str = Field(description="as the text output says it, e.g. errors x1.41 within 10m")
    warning: str = Field(description="what the stage cannot detect (errors x2, latency +20%)")


class StageLine(BaseModel):
    """One stage of a valid plan, as `validate` lists it."""

    name: str
    weight: int
    match: str | None = Field(description="the requests sent to the canary whatever the weight")
    bake_s: float
    check_every_s: float
    gates: list[str]
    approval: bool
    power: list[GatePower] = Field(
        default_factory=list, description="with --traffic or --live: its comparing gates' reach"
    )


class ValidRollout(BaseModel):
    valid: Literal[True] = True
    kind: Literal["rollout"] = "rollout"
    file: str
    service: str
    version: str
    workflow_id: str
    router: str = Field(description="the router and the target it moves")
    stages: list[StageLine]
    windows: str | None = Field(description="when increases may happen, and the next opening")
    traffic: str | None = Field(
        default=None, description="with --traffic or --live: the traffic the power assumes"
    )


class WaveLine(BaseModel):
    targets: list[str]
    approval: bool
    max_parallel: int | None
    bake_between_s: float


class TargetLine(BaseModel):
    router: str
    weights: list[int]


class ValidRelease(BaseModel):
    valid: Literal[True] = True
    kind: Literal["release"] = "release"
    file: str
    service: str
    version: str
    workflow_id: str
    on_target_failure: str
    waves: list[WaveLine]
    targets: dict[str, TargetLine]


class InvalidPlan(BaseModel):
    valid: Literal[False] = False
    file: str
    problems: list[str] = Field(description="each wrong field, as the text output names it")


class Written(BaseModel):
    """`rollout init --json`."""

    file: str
    service: str
    template: str
    router: str
    summary: str


# -- rollouts and releases ----------------------------------------------------------------------


class Started(BaseModel):
    """`rollout start --json`: the run started (with --follow, the first line)."""

    kind: Literal["rollout", "release", "experiment"]
    service: str
    workflow_id: str
    run_id: str | None
    ui_url: str
    target_claimed: bool | None = Field(
        description="rollout: whether a worker claimed its traffic target within the wait"
        " (False: none picked it up yet); release: null"
    )
    notes: list[str] = Field(description="what the text output prints on standard error")


class QueryStatus(ObservedStatus):
    """A rollout's status as its workflow answered it."""

    source: Literal["query"] = "query"


class ReleaseStatusAnswer(ReleaseStatus):
    """A release's status as its workflow answered it."""

    source: Literal["release"] = "release"


class Commanded(BaseModel):
    """`rollout pause|resume|approve|promote|rollback|abort|retry|override --json`."""

    service: str
    scope: Literal["rollout", "release"]
    record: CommandRecord | ReleaseCommandRecord


class Listed(BaseModel):
    """One rollout (or workflow) `rollout list` found."""

    service: str
    state: str = Field(description="the RolloutState search attribute, else the run's status")
    stage: str | None
    weight: int | None
    started_at: datetime
    workflow_id: str
    run_id: str


class ListAnswer(BaseModel):
    query: str
    rollouts: list[Listed]


class SetupAnswer(BaseModel):
    added: list[str] = Field(description="the search attributes registered now")
    attributes: list[str] = Field(description="every Rollout* search attribute")


# -- governance, reports, the dev stack -----------------------------------------------------------


class FreezeAnswer(BaseModel):
    """`rollout freeze add|list|remove --json`."""

    action: Literal["add", "list", "remove"]
    freeze: Freeze | None = Field(description="add, remove: the freeze added or removed")
    freezes: list[Freeze] = Field(description="list: the freezes in force or to come")
    removals: list[RemovedFreeze] = Field(description="list: the latest removals")


class ScheduleLine(BaseModel):
    schedule_id: str
    next_start: datetime | None


class ScheduleAnswer(BaseModel):
    """`rollout schedule PLAN|list|delete --json`."""

    action: Literal["create", "list", "delete"]
    schedule_id: str | None = Field(description="create, delete: the schedule")
    first_start: datetime | None = Field(description="create: when it first starts a rollout")
    schedules: list[ScheduleLine] = Field(description="list: every rollout schedule")


class ReportWritten(BaseModel):
    """`rollout report SERVICE --json`: the files written."""

    workflow_id: str
    state: str
    files: dict[str, str] = Field(
        description="format (md, html, json; an experiment's plot: png) to its absolute path"
    )


class DevDown(BaseModel):
    stopped: list[str]


class DevFault(BaseModel):
    version: str = Field(description="stable, canary or a further variant of the stack")
    fault: dict[str, Any] = Field(description="the demo service's fault now")


# -- the schemas --------------------------------------------------------------------------------

# One schema per command (operator commands share one), named as in docs/json.md.
SCHEMAS: dict[str, Any] = {
    "validate": ValidRollout | ValidRelease | InvalidPlan,
    "init": Written,
    "start": Started,
    "status": QueryStatus | TemporalRecords | ReleaseStatusAnswer,
    "command": Commanded,
    "list": ListAnswer,
    "setup": SetupAnswer,
    "freeze": FreezeAnswer,
    "schedule": ScheduleAnswer,
    "report": ReportWritten | Review,
    "dev-up": StackInfo,
    "dev-down": DevDown,
    "dev-fault": DevFault,
}


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of ``name``'s output, as the models make it: shapes and types only
    (the models' docstrings stay out; docs/json.md says what the fields mean)."""
    made: dict[str, Any] = TypeAdapter(SCHEMAS[name]).json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"rollout {name} --json",
        **shape(made),
    }


def shape(schema: Any) -> Any:
    """``schema`` without its descriptions."""
    if isinstance(schema, dict):
        return {k: shape(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [shape(item) for item in schema]
    return schema


def dump(answer: BaseModel) -> str:
    """An answer as the one JSON object a command prints."""
    return answer.model_dump_json(indent=2)


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema into ``folder`` as NAME.json; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(schema(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
