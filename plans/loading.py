"""Reading a plan: YAML checked for size and shape before loading, then validated.

Every problem comes back in one PlanError, each naming its field as the YAML does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plans import text
from plans.errors import PlanError
from plans.files import UnreadableFile, read_small_text
from plans.gates import GATE_MODELS
from plans.governance.windows import never_opens
from plans.notify import CHANNEL_KINDS, Templates, template_problems
from plans.plan import Plan
from plans.routers import ROUTER_KINDS
from plans.sources import SOURCE_KINDS
from plans.templates import UnknownTemplate, with_template

MAX_PLAN_BYTES = 1024 * 1024  # the file load_plan reads
MAX_YAML_VALUES = 20_000  # values in the file, each use of an alias counted in full
MAX_YAML_DEPTH = 20  # levels of nesting; a plan needs 5


# Where a union of kinds sits in a plan, and its kinds: pydantic puts the kind of the value
# it tried into an error's location ("router.haproxy.backend"), which YAML does not have.
_UNIONS: dict[tuple[str, ...], frozenset[str]] = {
    ("router",): frozenset(ROUTER_KINDS),
    ("metrics",): frozenset(SOURCE_KINDS),
    ("sources", "*"): frozenset(SOURCE_KINDS),
    ("gates", "#"): frozenset(GATE_MODELS),
    ("notify", "channel"): frozenset(CHANNEL_KINDS),
}
UNION_TAGS = frozenset().union(*_UNIONS.values())
# Mappings whose keys are names the plan gives (``sources.tasks``), not fields.
_NAMED = {("sources",)}


def location(loc: tuple[int | str, ...]) -> str:
    """An error's location as the YAML reads it (``gates.0.query``), without union tags."""
    kept: list[str] = []
    shape: tuple[str, ...] = ()
    for part in loc:
        if isinstance(part, str) and part in _UNIONS.get(shape, ()):
            shape += ("<kind>",)  # one tag per union: a field may share a kind's name
            continue
        kept.append(text.clip(str(part), 40))
        if isinstance(part, int):
            shape += ("#",)
        else:
            shape += ("*",) if shape in _NAMED else (str(part),)
    return ".".join(kept) or "plan"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling"
        elif item["type"] == "missing":
            message = "missing: this field is required"
        elif item["type"] != "value_error":
            # pydantic's own messages may repeat the input (a discriminator's tag, say).
            for value in [item.get("input"), *item.get("ctx", {}).values()]:
                if isinstance(value, str) and len(value) > text.QUOTE_CHARS + 20:
                    message = message.replace(value, text.clip(value, text.QUOTE_CHARS))
        for part in message.split("\n") if item["type"] == "value_error" else [message]:
            problems.append(f"{where}: {part}" if where != "plan" else part)
    return problems


def _invalid(problems: list[str], source: str) -> PlanError:
    """The PlanError for these problems, each cut to a readable length and the list too."""
    shown = [text.clip(p, text.MAX_PROBLEM_CHARS) for p in problems[: text.MAX_PROBLEMS_SHOWN]]
    if len(problems) > text.MAX_PROBLEMS_SHOWN:
        shown.append(
            f"... and {len(problems) - text.MAX_PROBLEMS_SHOWN:,} more: fix the ones above first"
        )
    return PlanError(shown, source)


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """Validate plan data (already loaded from YAML/JSON); raise PlanError naming each field."""
    if data is None:
        raise PlanError(["the plan is empty: write its fields (see docs/plans.md)"], source)
    if not isinstance(data, dict):
        raise PlanError(
            [f"the plan must be a mapping of fields, not {type(data).__name__}"], source
        )
    try:
        data, template, taken = with_template(data)
    except UnknownTemplate as error:
        raise PlanError([f"template: {error}"], source) from None
    try:
        plan = Plan.model_validate(data)
    except ValidationError as error:
        problems = _problems(error)
        if template is not None:
            problems = [_note_taken(p, template.name, taken) for p in problems]
        raise _invalid(problems, source) from None
    if plan.windows is not None and (closed := never_opens(plan.windows, datetime.now(UTC))):
        raise _invalid([closed], source)
    return plan


def _note_taken(problem: str, template: str, taken: frozenset[str]) -> str:
    """A problem in a field the plan took from its template says how to change that field."""
    field = problem.split(":", 1)[0].split(".", 1)[0]
    if field not in taken:
        return problem
    return f"{problem} ({field} comes from template {template!r}: write the plan's own {field})"


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
        if "maximum nesting depth" in str(error):  # PyYAML 6.0.4's own limit, met first
            raise _invalid([_TOO_DEEP], source) from None
        raise _invalid([f"not valid YAML: {error}"], source) from None
    except _TooBig as error:
        raise _invalid([str(error)], source) from None
    except (ValueError, OverflowError) as error:  # e.g. an integer of 5,000 digits
        raise _invalid([f"not valid YAML: a value cannot be read: {error}"], source) from None


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (at most MAX_PLAN_BYTES)."""
    plan = parse_plan(load_plan_data(path), str(path))
    return with_templates(plan, Path(path))


def load_plan_data(path: str | Path) -> Any:
    """A plan file's data, read and checked for size and shape, not yet validated."""
    path = Path(path)
    too_big = (
        f"{path} is larger than {MAX_PLAN_BYTES:,} bytes, the most a plan file may be:"
        " a plan is a few kilobytes; check that this is the plan, and split a plan"
        " that big into several rollouts"
    )
    try:
        text = read_small_text(path, MAX_PLAN_BYTES, too_big)
    except UnreadableFile as error:
        raise PlanError([str(error)], str(path)) from None
    return _load_yaml(text, str(path))


def with_templates(plan: Plan, path: Path) -> Plan:
    """The plan with its templates folder checked and made absolute (relative to the file)."""
    templates = plan.notify.templates
    if templates is None:
        return plan
    folder = (path.parent / templates.dir).resolve()
    problems = template_problems(folder)
    if problems:
        raise _invalid([f"notify.templates.dir: {p}" for p in problems], str(path))
    notify = plan.notify.model_copy(update={"templates": Templates(dir=str(folder))})
    return plan.model_copy(update={"notify": notify})
