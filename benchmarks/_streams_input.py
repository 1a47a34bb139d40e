"""The input of ``judge_quality.py --streams FILE``, checked against its contract before judging.

The judge reads whatever numbers it is given: a half-width latency row, a NaN, or latency
counts that do not add up to the requests would still give a verdict, a wrong one. So a
stage must be exactly what the contract in docs/judging.md ("Your own streams") says, and
each problem is reported with what to fix: the field, the version, the step (indices
count from 0, the ``pre_steps`` included) and the bucket.

Choices the contract leaves open: ``id`` is a non-empty string, or a whole number printed
as one; integers may be written with a zero fraction (``60.0``), never as strings, bools or
fractions; NaN and Infinity, which Python's json reads but JSON has not, are refused;
fields the contract does not name (a generator's own notes, the truth of a stage) are
left alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

SETTINGS = ("step_s", "pre_steps", "check_every_s", "bake_s")
VERSIONS = ("canary", "stable")
SERIES = ("requests", "errors", "latency_counts")
FIELDS = ("id", *SETTINGS, "buckets", *VERSIONS)
MAX_COUNT = 2**53  # the largest count the judge's floats hold exactly
COUNT = "a whole number >= 0 (at most 2**53)"
PER_STEP = "one per step: pre_steps + bake_s / step_s"


@dataclass(frozen=True)
class Stage:
    """One stage of the contract, every value checked; ``bounds`` end with +Inf."""

    id: str
    step_s: int
    pre_steps: int
    check_every_s: int
    bake_s: int
    bounds: list[float]
    requests: dict[str, list[int]]
    errors: dict[str, list[int]]
    latency_counts: dict[str, list[list[int]]]


class MalformedStage(ValueError):
    """A line that breaks the contract; ``problems`` holds one message per thing to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Literal:
    """NaN, Infinity or -Infinity as written: kept so that the field's check can name it."""

    def __init__(self, text: str) -> None:
        self.text = text


@dataclass(frozen=True)
class Read:
    """A file's stages that keep the contract, and a problem a line for those that break it
    (``FILE:LINE: message``, with ``malformed`` such lines)."""

    stages: list[Stage]
    problems: list[str]
    malformed: int


def read_stages(path: str) -> Read:
    """Every stage of a JSON Lines file, blank lines skipped; OSError if it cannot be read.

    Every line is checked before any is judged, so that a malformed one is named at once
    rather than after an hour of judging the lines before it.
    """
    with open(path, "rb") as file:
        data = file.read()
    stages: list[Stage] = []
    problems: list[str] = []
    malformed = 0
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            stages.append(checked_stage(parsed_line(raw)))
        except MalformedStage as error:
            malformed += 1
            problems += [f"{path}:{number}: {problem}" for problem in error.problems]
    return Read(stages, problems, malformed)


def parsed_line(raw: bytes) -> Any:
    """One line's JSON; NaN and Infinity come back as ``_Literal`` for the field checks."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_Literal)
    except UnicodeDecodeError as error:
        raise MalformedStage([f"not UTF-8 (byte {error.start}): write the file as UTF-8"]) from None
    except json.JSONDecodeError as error:
        raise MalformedStage([f"not valid JSON: {error.msg} at column {error.colno}"]) from None
    except (ValueError, RecursionError) as error:  # an int of 4,300+ digits, [[[[...
        raise MalformedStage([f"cannot be read as JSON: {error}"]) from None


def checked_stage(raw: Any) -> Stage:
    """A parsed line as a Stage, or MalformedStage naming every problem found in it."""
    if not isinstance(raw, dict):
        raise MalformedStage([f"a stage must be a JSON object, got {_shown(raw)}"])
    problems = _missing(raw, FIELDS, "")
    name = _name(raw["id"]) if "id" in raw else ""
    if "id" in raw and not name:
        problems.append(f"id must be a non-empty string or a whole number, got {_shown(raw['id'])}")
    settings = _settings(raw, problems)
    steps = _steps(settings, problems)
    bounds = _bounds(raw["buckets"], problems) if "buckets" in raw else None
    width = None if bounds is None else len(bounds)
    sides = {v: _side(raw[v], v, steps, width, problems) for v in VERSIONS if v in raw}
    checked = {version: side for version, side in sides.items() if side is not None}
    if problems or bounds is None or len(checked) < len(VERSIONS):
        raise MalformedStage(problems)
    return Stage(
        name,
        **settings,
        bounds=bounds,
        requests={version: side[0] for version, side in checked.items()},
        errors={version: side[1] for version, side in checked.items()},
        latency_counts={version: side[2] for version, side in checked.items()},
    )


def _missing(raw: dict[str, Any], fields: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}{name} is missing" for name in fields if name not in raw]


def _name(value: Any) -> str:
    """The stage's id as printed: a non-empty string, or a whole number's digits; else ""."""
    if isinstance(value, str):
        return value
    number = _integer(value)
    return "" if number is None else str(number)


def _settings(raw: dict[str, Any], problems: list[str]) -> dict[str, int]:
    settings = {}
    for name in SETTINGS:
        if name not in raw:
            continue
        least, unit = (0, "steps") if name == "pre_steps" else (1, "seconds")
        value = _integer(raw[name])
        if value is None or value < least:
            got = _shown(raw[name])
            problems.append(f"{name} must be a whole number of {unit} >= {least}, got {got}")
        else:
            settings[name] = value
    return settings


def _steps(settings: dict[str, int], problems: list[str]) -> int | None:
    """How many entries each series needs, or None if the settings leave it unknown."""
    if len(settings) < len(SETTINGS):
        return None
    step_s, bake_s, check_s = settings["step_s"], settings["bake_s"], settings["check_every_s"]
    if bake_s < check_s:
        problems.append(
            f"bake_s ({bake_s}) must be at least check_every_s ({check_s}):"
            " a stage shorter than one check is never judged"
        )
    if bake_s % step_s:
        problems.append(
            f"bake_s ({bake_s}) must be a multiple of step_s ({step_s}):"
            " each series holds pre_steps + bake_s / step_s entries"
        )
        return None
    return settings["pre_steps"] + bake_s // step_s


def _bounds(value: Any, problems: list[str]) -> list[float] | None:
    """The upper bounds, +Inf last, or None (and the problems) if they break the contract."""
    if not isinstance(value, list) or len(value) < 2:
        problems.append(
            "buckets must be a list of at least 2 upper bounds in seconds, ascending,"
            f" the last null (+Inf), got {_shown(value)}"
        )
        return None
    found = len(problems)
    bounds: list[float] = []
    for index, bound in enumerate(value[:-1]):
        if bound is None:
            problems.append(f"buckets[{index}] is null, but only the last bound may be (+Inf)")
        elif not _is_number(bound) or bound <= 0:
            problems.append(
                f"buckets[{index}] must be a number of seconds > 0, got {_shown(bound)}"
            )
        elif bounds and bound <= bounds[-1]:
            problems.append(
                f"buckets[{index}] ({bound:g}) must be greater than the bound before it"
                f" ({bounds[-1]:g}): bounds ascend strictly"
            )
        else:
            bounds.append(float(bound))
    if value[-1] is not None:
        problems.append(f"buckets[{len(value) - 1}] must be null (+Inf), got {_shown(value[-1])}")
    return [*bounds, math.inf] if len(problems) == found else None


def _side(
    value: Any, version: str, steps: int | None, width: int | None, problems: list[str]
) -> tuple[list[int], list[int], list[list[int]]] | None:
    """One version's series, or None; a check the settings or buckets leave open is skipped."""
    if not isinstance(value, dict):
        problems.append(f"{version} must be an object of {', '.join(SERIES)}, got {_shown(value)}")
        return None
    problems += _missing(value, SERIES, f"{version}.")
    requests = _counts(value, "requests", version, steps, problems)
    errors = _counts(value, "errors", version, steps, problems)
    rows = _rows(value, version, steps, width, problems)
    if requests is None or errors is None or rows is None:
        return None
    over = [
        f"{version}.errors[{step}] ({bad}) exceeds {version}.requests[{step}] ({n})"
        for step, (bad, n) in enumerate(zip(errors, requests, strict=True))
        if bad > n
    ]
    unequal = [
        f"{version}.latency_counts[{step}] sums to {sum(row)}, but {version}.requests[{step}]"
        f" is {n}: a row splits its step's requests by bucket (not cumulative)"
        for step, (row, n) in enumerate(zip(rows, requests, strict=True))
        if sum(row) != n
    ]
    _first(problems, over)
    _first(problems, unequal)
    return requests, errors, rows


def _counts(
    side: dict[str, Any], name: str, version: str, steps: int | None, problems: list[str]
) -> list[int] | None:
    """A series of counts, one per step, or None if it is missing, short or wrong anywhere."""
    if name not in side:
        return None
    value, where = side[name], f"{version}.{name}"
    if not isinstance(value, list):
        problems.append(f"{where} must be a list of counts, {PER_STEP}, got {_shown(value)}")
        return None
    counts = [_count(entry) for entry in value]
    wrong = [
        f"{where}[{step}] must be {COUNT}, got {_shown(value[step])}"
        for step, count in enumerate(counts)
        if count is None
    ]
    _first(problems, wrong)
    fits = _has_steps(value, where, steps, "entries", problems)
    return [c for c in counts if c is not None] if fits and None not in counts else None


def _rows(
    side: dict[str, Any], version: str, steps: int | None, width: int | None, problems: list[str]
) -> list[list[int]] | None:
    """The latency counts, a row per step and a count per bucket, or None if any is wrong."""
    if "latency_counts" not in side:
        return None
    value, where = side["latency_counts"], f"{version}.latency_counts"
    if not isinstance(value, list):
        problems.append(f"{where} must be a list of rows, {PER_STEP}, got {_shown(value)}")
        return None
    shapes, entries, rows = [], [], []
    for step, row in enumerate(value):
        if not isinstance(row, list):
            shapes.append(
                f"{where}[{step}] must be a list of counts, a count per bucket, got {_shown(row)}"
            )
            continue
        if width is not None and len(row) != width:
            shapes.append(f"{where}[{step}] has {len(row)} counts, needs {width} (one per bucket)")
        counts = [_count(entry) for entry in row]
        entries += [
            f"{where}[{step}][{bucket}] must be {COUNT}, got {_shown(row[bucket])}"
            for bucket, count in enumerate(counts)
            if count is None
        ]
        rows.append([c for c in counts if c is not None])
    _first(problems, shapes)
    _first(problems, entries)
    fits = _has_steps(value, where, steps, "rows", problems)
    return rows if fits and not shapes and not entries else None


def _has_steps(
    value: list[Any], where: str, steps: int | None, noun: str, problems: list[str]
) -> bool:
    if steps is None:
        return False
    if len(value) != steps:
        problems.append(f"{where} has {len(value)} {noun}, needs {steps} ({PER_STEP})")
        return False
    return True


def _first(problems: list[str], alike: list[str]) -> None:
    """The first of alike problems and how many more: one mistake repeated is one message."""
    if alike:
        more = f" (and {len(alike) - 1} more like it)" if len(alike) > 1 else ""
        problems.append(alike[0] + more)


def _integer(value: Any) -> int | None:
    """An int, or a float with a zero fraction; None for bools, strings, 60.9, NaN and the rest."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _count(value: Any) -> int | None:
    count = _integer(value)
    return count if count is not None and 0 <= count <= MAX_COUNT else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any) -> str:
    """A value as the input wrote it, with its JSON type where the type is what is wrong."""
    if isinstance(value, _Literal):
        return f"{value.text} (not a JSON number)"
    if isinstance(value, bool | str):
        kind = "a string" if isinstance(value, str) else "a boolean"
        return f"{json.dumps(value)[:40]} ({kind})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return json.dumps(value)
