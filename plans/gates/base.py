"""What every gate has, whatever its kind: its name, its queries, its window and its policy.

A gate's kind (``plans.gates``) adds the fields of its rule. Plans recorded before gates had
one model per kind carry every kind's fields, each at its default; a gate drops those of
other kinds that hold their defaults and refuses any that are set, naming the kind that
uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from plans import text
from plans.durations import Duration, format_duration
from plans.sources import PRESETS
from plans.text import Strict

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


def format_value(value: float, unit: str = "") -> str:
    """A measured value as people read it: ``4.1%`` for a ratio, ``212ms`` for seconds."""
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return f"{value * 1000:.3g}ms" if abs(value) < 1 else f"{value:.3g}s"
    return f"{value:g}"


# Each kind of gate, by its ``kind``, as its model is defined (the ``Gate`` union lists them).
_KINDS: dict[str, type[GateBase]] = {}


class GateBase(Strict):
    """A metric that must hold while a stage bakes: its data and its policy.

    A gate below ``min_samples`` requests (``samples_query``) is inconclusive, never a pass.
    """

    name: Annotated[str, text.safe_name("gate name")]
    kind: str
    preset: str | None = Field(default=None, description="a built-in gate (plans.presets)")
    source: Annotated[str, text.safe_name("source name")] | None = Field(
        default=None, description="one of the plan's named sources; the plan's metrics if unset"
    )
    query: str = Field(
        description="in the source's language; $canary, $stable, $service, $target, $window"
        " and the router's placeholders (HAProxy: $backend) are filled in"
    )
    samples_query: str | None = Field(
        default=None, description="a query counting the requests behind one side's value"
    )
    min_samples: int = Field(default=0, ge=0, description="fewer requests: inconclusive")
    window: Duration = Field(
        default=timedelta(minutes=1), description="the span $window stands for"
    )
    failure_limit: int = Field(default=1, ge=1, le=1000)
    inconclusive_limit: int = Field(default=3, ge=1, le=1000)
    on_fail: GateActionName | None = None
    on_inconclusive: GateActionName | None = None
    severity: Severity = "critical"
    dry_run: bool = Field(default=False, description="evaluate and record, never act")
    unit: Unit = Field(default="", description="how values are shown: ratio as %, seconds")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if isinstance(kind, str):
            _KINDS[kind] = cls

    @model_validator(mode="before")
    @classmethod
    def _preset_and_other_kinds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("preset") is not None:
            data = _with_preset(data)
        if data.get("kind", "threshold") != cls.model_fields["kind"].default:
            return data  # an unknown kind: the kind field says so
        return cls._without_other_kinds(data)

    @classmethod
    def _without_other_kinds(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` without other kinds' fields at their defaults; an error for any set."""
        others = _fields_of_other_kinds(cls)
        if not others.keys() & data.keys():
            return data
        kept, errors, set_ = dict(data), [], []
        for name, (info, adapter) in others.items():
            if name not in data:
                continue
            value = kept.pop(name)
            try:
                parsed = adapter.validate_python(value)
            except ValidationError as error:
                errors += [{**e, "loc": (name, *e["loc"])} for e in error.errors()]
                continue
            if parsed != info.get_default(call_default_factory=True):
                set_.append(name)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)  # type: ignore[arg-type]
        if set_:
            raise ValueError(_problems_text(data.get("name"), cls._fields_elsewhere(set_)))
        return kept

    @classmethod
    def _fields_elsewhere(cls, names: list[str]) -> list[str]:
        """Problems for fields of other kinds set on a gate of this kind."""
        return [f"{', '.join(names)} apply to other kinds of gate"]

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, v: Any) -> Any:
        if v not in _KINDS:
            kinds = ", ".join(_KINDS)
            raise ValueError(f"{text.quote(v)} is not a kind of gate: use {kinds}")
        return v

    @field_validator("query", "samples_query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is None:
            return v
        too_long = text.too_long(v, text.MAX_QUERY_CHARS, "a query may have")
        if too_long:
            raise ValueError(
                f"{too_long}: shorten it, e.g. with a recording rule in the metrics source"
            )
        count = sum(1 for _ in text.PLACEHOLDER.finditer(v))
        if count > text.MAX_PLACEHOLDERS:
            raise ValueError(
                f"{count:,} placeholders is more than the {text.MAX_PLACEHOLDERS} a query may"
                " hold: shorten it, e.g. with a recording rule in the metrics source"
            )
        return v

    @field_validator("window")
    @classmethod
    def _whole_seconds(cls, v: timedelta) -> timedelta:
        return whole_seconds(v)

    @model_validator(mode="after")
    def _consistent(self) -> GateBase:
        problems = self._problems()
        if self.min_samples > 0 and self.samples_query is None:
            problems.append(
                f"min_samples {self.min_samples} needs samples_query: a query counting the"
                " requests in the window, e.g. sum(increase(requests_total[$window]))"
            )
        if problems:
            raise ValueError(_problems_text(self.name, problems))
        return self

    def _problems(self) -> list[str]:
        """What is wrong with this gate's rule (each kind checks its own fields)."""
        return []

    @property
    def compares(self) -> bool:
        """True when the gate measures the stable too (relative and statistical gates)."""
        return False

    @property
    def queries_per_check(self) -> int:
        """How many queries one check of this gate runs (for time budgets)."""
        per_side = 1 + (self.samples_query is not None)
        return per_side * (2 if self.compares else 1)

    @property
    def fail_action(self) -> GateActionName:
        """What a sustained failure does: on_fail, else what the severity says."""
        return self.on_fail or SEVERITY_ACTIONS[self.severity][0]

    @property
    def inconclusive_action(self) -> GateActionName:
        """What a sustained lack of data does: on_inconclusive, else the severity's."""
        return self.on_inconclusive or SEVERITY_ACTIONS[self.severity][1]

    def show(self, value: float) -> str:
        """A value of this gate's metric, in its unit."""
        return format_value(value, self.unit)

    def describe_threshold(self) -> str:
        """What the gate wants, in a few words (shown beside each verdict)."""
        raise NotImplementedError

    def windows(self) -> list[tuple[str, str, float]]:
        """(field, window as shown, seconds) the gate reads beyond its queries' own ranges."""
        return []


def whole_seconds(v: timedelta) -> timedelta:
    """``v`` if it is whole seconds, 1s or more; a range query steps by whole seconds."""
    seconds = v.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"{format_duration(v)}: use whole seconds, 1s or more")
    return v


def _with_preset(data: dict[str, Any]) -> dict[str, Any]:
    """The gate's fields over its preset's defaults for its kind."""
    name = data["preset"]
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise ValueError(
            f"unknown preset {text.quote(name)}: use one of {', '.join(sorted(PRESETS))}"
        )
    kind = data.get("kind", "threshold")
    defaults = preset.defaults(kind if isinstance(kind, str) else "threshold")
    if kind == "threshold" and ("max" in data or "min" in data):
        defaults.pop("max", None)
        defaults.pop("min", None)
    return {**defaults, **data}


def _problems_text(name: Any, problems: list[str]) -> str:
    # "gate 'x' needs a threshold" reads as a sentence, the others as "gate 'x': problem".
    shown = repr(name) if isinstance(name, str) else text.quote(name)
    return "; ".join(f"gate {shown}{' ' if p.startswith('needs ') else ': '}{p}" for p in problems)


@cache
def _fields_of_other_kinds(
    model: type[GateBase],
) -> dict[str, tuple[FieldInfo, TypeAdapter[Any]]]:
    """Fields that other kinds of gate have and ``model`` has not, with their validation."""
    found: dict[str, tuple[FieldInfo, TypeAdapter[Any]]] = {}
    for other in _KINDS.values():
        for name, info in _own_fields(other):
            if name not in model.model_fields and name not in found:
                found[name] = (
                    info,
                    TypeAdapter(Any if info.annotation is None else _annotated(info)),
                )
    return found


def _own_fields(model: type[GateBase]) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        if name not in GateBase.model_fields:
            yield name, info


def _annotated(info: FieldInfo) -> Any:
    return Annotated[info.annotation, info]
