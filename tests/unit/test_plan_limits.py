"""Bad input that still hurts: huge values, huge plans and YAML bombs are refused, briefly.

Every cap applies where plans come in: load_plan (the CLI's ``validate`` and ``start``),
parse_plan, and pydantic validation of ``Plan`` itself, which is what the worker runs on a
plan it receives through Temporal.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import plans.sources.promql
import plans.text
from plans import Plan, PlanError, load_plan, parse_plan
from plans.durations import MAX_DURATION_CHARS
from plans.loading import MAX_PLAN_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, UNION_TAGS
from plans.sources.promql import range_windows
from plans.text import (
    MAX_GATES,
    MAX_PLACEHOLDERS,
    MAX_PROBLEMS_SHOWN,
    MAX_QUERY_CHARS,
    MAX_STAGES,
    MAX_TEXT_CHARS,
)
from starter.cli import EXIT_INVALID, main

HUGE = 5_000_000
SHORT_MESSAGE = 2_000

BASE: dict[str, Any] = {
    "service": "shop",
    "version": "v2",
    "stable": "shop-v1",
    "canary": "shop-v2",
    "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "shop"},
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
    "gates": [
        {"name": "errors", "query": 'rate(e{s="$canary"}[1m])', "max": 0.01},
        {"name": "latency", "query": 'p99{s="$canary"}', "max": 0.3},
    ],
    "stages": [
        {"name": "ten", "weight": 10, "bake": "5m", "gates": ["errors"]},
        {"name": "all", "weight": 100, "bake": "10m"},
    ],
}


def plan_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def name(prefix: str, i: int, length: int = 63) -> str:
    tail = f"-{i}"
    return prefix + "x" * (length - len(prefix) - len(tail)) + tail


def query(chars: int, placeholders: int) -> str:
    """A threshold query of exactly ``chars`` characters holding ``placeholders`` placeholders."""
    text = 'rate(e{s="$canary"}[1m])' + " + vector($service)" * (placeholders - 1)
    return text + " + " + "0" * (chars - len(text) - 3)


def biggest_allowed() -> dict[str, Any]:
    """A plan at every cap at once."""
    gate_names = [name("g", i) for i in range(MAX_GATES)]
    return plan_with(
        service=name("svc", 0),
        version=name("v", 0),
        gates=[
            {
                "name": n,
                "query": query(MAX_QUERY_CHARS, MAX_PLACEHOLDERS),
                "samples_query": query(MAX_QUERY_CHARS, MAX_PLACEHOLDERS),
                "max": 1,
            }
            for n in gate_names
        ],
        stages=[
            {"name": name("s", j), "weight": j + 1, "bake": "10m", "gates": list(gate_names)}
            for j in range(MAX_STAGES)
        ],
    )


def refusal(data: Any) -> PlanError:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    return caught.value


def loading(path: Path) -> PlanError:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return caught.value


def short(error: Exception) -> str:
    text = str(error)
    assert len(text.encode()) < SHORT_MESSAGE, text[:3000]
    return text


# -- huge values: the message quotes a short prefix ------------------------------------------


def test_a_5mb_version_gives_a_short_message_naming_the_field_and_the_limit() -> None:
    error = refusal(plan_with(version="v" * HUGE))
    text = short(error)
    [problem] = error.problems
    assert problem.startswith("version: 'vvvv")
    assert "(5,000,000 characters) is not a safe version label: use 1-63 letters" in problem
    assert len(text) < 400


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("service", "service"),
        ("stable", "stable"),
        ("router.backend", "router.backend"),
        ("router.runtime_api", "router.runtime_api"),
        ("router.kind", "router"),
        ("router.timeout", "router.timeout"),
        ("metrics.url", "metrics.url"),
        ("metrics.bearer_token_env", "metrics.bearer_token_env"),
        ("gates.0.name", "gates.0.name"),
        ("gates.0.query", "gates.0.query"),
        ("gates.0.samples_query", "gates.0.samples_query"),
        ("gates.0.preset", "gates.0"),
        ("gates.0.kind", "gates.0.kind"),
        ("stages.0.name", "stages.0.name"),
        ("stages.0.bake", "stages.0.bake"),
        ("stages.0.gates.0", "stages.0.gates"),
        ("notify", "notify"),
    ],
)
def test_a_huge_value_anywhere_gives_a_short_message_naming_its_field(
    path: str, field: str
) -> None:
    data = plan_with(notify={})
    set_path(data, path, "x" * HUGE)
    error = refusal(data)
    short(error)
    assert any(p.startswith(f"{field}:") for p in error.problems), error.problems


def test_a_huge_unknown_field_name_is_cut_short() -> None:
    error = refusal(plan_with(**{"k" * HUGE: 1}))
    short(error)
    [problem] = error.problems
    assert "(5,000,000 characters): unknown field" in problem


def test_a_huge_duration_that_is_not_a_string_is_named_by_its_type() -> None:
    data = plan_with()
    data["stages"][0]["bake"] = ["1m"] * 1_000_000
    [problem] = refusal(data).problems
    assert problem == "stages.0.bake: a list is not a duration: write it like 30s, 10m, 48h or 7d"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("stages.0.bake", "a number of about 400 digits is"),
        ("stages.0.check_every", "a number of about 400 digits is"),
        ("stages.0.weight", "is out of range: use a percentage from 0 to 100"),
    ],
)
def test_a_huge_number_is_refused_briefly_not_with_a_traceback(path: str, expected: str) -> None:
    for number in (10**400, -(10**400)):
        data = plan_with()
        set_path(data, path, number)
        [problem] = refusal(data).problems
        assert problem.startswith(f"{path}: ") and expected in problem
        assert len(problem) < 200


def test_the_worker_path_gives_a_short_message_too() -> None:
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate_json(json.dumps(plan_with(version="v" * HUGE)))
    assert "version" in short(caught.value)


def test_a_plan_with_thousands_of_problems_lists_the_first_ones() -> None:
    data = plan_with(
        stages=[
            {"name": f"s{j}", "weight": j + 1, "gates": [name("nowhere", i) for i in range(50)]}
            for j in range(MAX_STAGES)
        ]
    )
    error = refusal(data)
    assert len(error.problems) == MAX_PROBLEMS_SHOWN + 1
    assert error.problems[-1] == "... and 4,950 more: fix the ones above first"
    assert "unknown gate 'nowhere" in error.problems[0]
    assert len(str(error)) < MAX_PROBLEMS_SHOWN * 400


# -- caps on counts and lengths, in parse_plan and in the model --------------------------------


def gates(count: int) -> list[dict[str, Any]]:
    return [{"name": f"g{i}", "query": f'e{{s="$canary"}} + {i}', "max": 1} for i in range(count)]


def stages(count: int) -> list[dict[str, Any]]:
    return [{"name": f"s{j}", "weight": j} for j in range(count)]


# (what, a plan over that cap, the field named, what the message says of the limit)
OVER_CAPS: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    (
        "gates",
        lambda: plan_with(gates=gates(MAX_GATES + 1)),
        "gates",
        f"{MAX_GATES + 1} gates, more than the {MAX_GATES} a plan may have",
    ),
    (
        "stages",
        lambda: plan_with(stages=stages(MAX_STAGES + 1)),
        "stages",
        f"{MAX_STAGES + 1} stages, more than the {MAX_STAGES} a plan may have",
    ),
    (
        "gates per stage",
        lambda: plan_with(
            stages=[{"name": "all", "weight": 100, "gates": ["errors"] * (MAX_GATES + 1)}]
        ),
        "stages.0.gates",
        f"{MAX_GATES + 1} gate names, more than the {MAX_GATES} a stage may list",
    ),
    (
        "query length",
        lambda: plan_with(gates=[{"name": "q", "query": query(MAX_QUERY_CHARS + 1, 1), "max": 1}]),
        "gates.0.query",
        f"({MAX_QUERY_CHARS + 1:,} characters) is longer than the {MAX_QUERY_CHARS:,} characters"
        " a query may have",
    ),
    (
        "placeholders",
        lambda: plan_with(
            gates=[{"name": "q", "query": query(MAX_QUERY_CHARS, MAX_PLACEHOLDERS + 1), "max": 1}]
        ),
        "gates.0.query",
        f"{MAX_PLACEHOLDERS + 1} placeholders is more than the {MAX_PLACEHOLDERS} a query may hold",
    ),
    (
        "url",
        lambda: plan_with(
            metrics={"kind": "prometheus", "url": "http://p/" + "a" * MAX_TEXT_CHARS}
        ),
        "metrics.url",
        f"is longer than the {MAX_TEXT_CHARS:,} characters a Prometheus URL may have",
    ),
    (
        "runtime_api",
        lambda: plan_with(
            router={"kind": "haproxy", "runtime_api": "/" + "r" * MAX_TEXT_CHARS, "backend": "b"}
        ),
        "router.runtime_api",
        f"is longer than the {MAX_TEXT_CHARS:,} characters a runtime API address may have",
    ),
    (
        "duration",
        lambda: plan_with(
            stages=[{"name": "all", "weight": 100, "bake": "1" * MAX_DURATION_CHARS + "1s"}]
        ),
        "stages.0.bake",
        f"({MAX_DURATION_CHARS + 2} characters) is too long for a duration (at most"
        f" {MAX_DURATION_CHARS} characters)",
    ),
    (
        "name",
        lambda: plan_with(service="s" * 100),
        "service",
        "(100 characters) is not a safe name",
    ),
]
CAP_CASES = pytest.mark.parametrize(
    ("make", "field", "expected"),
    [case[1:] for case in OVER_CAPS],
    ids=[case[0] for case in OVER_CAPS],
)


@CAP_CASES
def test_a_plan_over_a_cap_is_refused_naming_the_field_and_the_limit(
    make: Callable[[], dict[str, Any]], field: str, expected: str
) -> None:
    error = refusal(make())
    short(error)
    [problem] = [p for p in error.problems if expected in p]
    assert problem.startswith(f"{field}: ")
    # What to do comes after the limit.
    assert ": " in problem.split(expected)[-1]


@CAP_CASES
def test_the_model_itself_refuses_a_plan_over_a_cap(
    make: Callable[[], dict[str, Any]], field: str, expected: str
) -> None:
    # What the worker does with a plan that reaches it through Temporal.
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate_json(json.dumps(make()))
    short(caught.value)
    [error] = caught.value.errors()
    assert ".".join(str(p) for p in error["loc"] if p not in UNION_TAGS) == field
    assert expected in error["msg"]


def test_60000_gates_are_refused_before_any_gate_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names_checked = count_calls(monkeypatch, plans.text, "check_name")
    [problem] = refusal(plan_with(gates=gates(60_000))).problems
    assert problem.startswith("gates: 60,000 gates, more than the 50 a plan may have: ")
    # The plan's own names and its two stages', no gate's.
    assert len(names_checked) == 7


def test_a_plan_at_every_cap_is_accepted(tmp_path: Path) -> None:
    data = biggest_allowed()
    plan = parse_plan(data)
    assert len(plan.gates) == MAX_GATES and len(plan.stages) == MAX_STAGES
    assert all(len(plan.gates_for(s)) == MAX_GATES for s in plan.stages)
    # From a file, as the CLI reads it, and as the worker receives it.
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, width=10_000), encoding="utf-8")
    assert path.stat().st_size < MAX_PLAN_BYTES
    assert load_plan(path) == plan
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


# -- the file and its YAML -------------------------------------------------------------------


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(yaml.safe_dump(BASE).encode() + b"#" * MAX_PLAN_BYTES)
    [problem] = loading(path).problems
    assert problem.startswith(f"{path} is larger than 1,048,576 bytes, the most a plan file")


def test_a_file_of_exactly_the_size_cap_is_read(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE) + "#"
    path = tmp_path / "plan.yaml"
    path.write_text(text + "x" * (MAX_PLAN_BYTES - len(text)), encoding="utf-8")
    assert path.stat().st_size == MAX_PLAN_BYTES
    assert load_plan(path).service == "shop"


def test_a_file_that_never_ends_is_refused(tmp_path: Path) -> None:
    [problem] = loading(Path("/dev/zero")).problems
    assert "larger than 1,048,576 bytes" in problem


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level, prev in zip("bcdefghijk"[: levels - 1], "abcdefghij", strict=False):
        text += f"{level}: &{level} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (billion_laughs(), f"the YAML has more than {MAX_YAML_VALUES:,} values"),
        # The bomb where a plan reads a duration: its repr alone would be gigabytes.
        (
            billion_laughs() + yaml.safe_dump(BASE).replace("bake: 5m", "bake: *i"),
            f"the YAML has more than {MAX_YAML_VALUES:,} values",
        ),
        ("service: " + "[" * 100_000, f"nested more than {MAX_YAML_DEPTH} levels deep"),
        ("service: &a [*a]\n", "an alias (*name) inside the value it names"),
        (
            "gates:\n" + "".join(f"- {{name: g{i}, query: q}}\n" for i in range(MAX_YAML_VALUES)),
            f"the YAML has more than {MAX_YAML_VALUES:,} values",
        ),
        ("service: " + "1" * 5000 + "\n", "not valid YAML: a value cannot be read"),
        ("service: 2024-13-45\n", "not valid YAML: a value cannot be read: month must be in"),
        ("service: *" + "a" * 100_000 + "\n", "not valid YAML: found undefined alias"),
    ],
    ids=["billion-laughs", "bomb-in-a-plan", "deep", "recursive", "many", "int", "date", "alias"],
)
def test_hostile_yaml_is_refused_with_a_short_message(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    error = loading(path)
    short(error)
    assert any(expected in p for p in error.problems), error.problems


def test_aliases_a_plan_might_use_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    text = yaml.safe_dump(BASE).replace("bake: 5m", "bake: &short 5m")
    path.write_text(text.replace("bake: 10m", "bake: *short"), encoding="utf-8")
    plan = load_plan(path)
    assert plan.stages[0].bake == plan.stages[1].bake


def test_the_cli_refuses_a_hostile_file_in_a_few_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_with(version="v" * 500_000)), encoding="utf-8")
    for command in ("validate", "start"):
        with pytest.raises(SystemExit) as exit_:
            main([command, str(path)])
        assert exit_.value.code == EXIT_INVALID
        err = capsys.readouterr().err
        assert "version" in err and "(500,000 characters)" in " ".join(err.split())
        assert len(err) < SHORT_MESSAGE and "Traceback" not in err


# -- linear work -----------------------------------------------------------------------------


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str) -> list[None]:
    """Wrap ``owner.attribute`` so that each call appends to the list returned."""
    calls: list[None] = []
    original = getattr(owner, attribute)
    if isinstance(original, classmethod):
        original = original.__func__
    inner = getattr(original, "__func__", original)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return inner(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, counted)
    return calls


def checks_for(monkeypatch: pytest.MonkeyPatch, gate_count: int, stage_count: int) -> list[int]:
    """Calls of the per-gate checks while validating a plan of that many gates and stages."""
    windows = count_calls(monkeypatch, plans.sources.promql, "range_windows")
    equals = count_calls(monkeypatch, BaseModel, "__eq__")
    names = [f"g{i}" for i in range(gate_count)]
    data = plan_with(
        gates=gates(gate_count),
        stages=[
            {"name": f"s{j}", "weight": j + 1, "gates": list(names)} for j in range(stage_count)
        ],
    )
    parse_plan(data)
    found = [len(windows), len(equals)]
    monkeypatch.undo()
    return found


def test_each_gates_windows_are_read_once_whatever_the_stages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each gate reads its two queries' windows once, not once per stage, and no gate is
    # looked up by comparing it with every other (a pydantic __eq__ per pair).
    assert checks_for(monkeypatch, 10, 5) == [20, 0]
    assert checks_for(monkeypatch, 20, 5) == [40, 0]
    assert checks_for(monkeypatch, 20, 50) == [40, 0]
    assert checks_for(monkeypatch, MAX_GATES, MAX_STAGES) == [2 * MAX_GATES, 0]


# -- range selectors, read without backtracking ----------------------------------------------


@pytest.mark.parametrize(
    ("query_text", "windows"),
    [
        ('rate(x{s="$canary"}[1m]) / rate(y[ 5m ])', ["1m", "5m"]),
        ("max_over_time(rate(x[1m])[$window:30s])", ["1m", "$window"]),
        ('rate(x{code=~"5[0-9]+"}[2m])', ["2m"]),
        ("rate(x{code=~'5[0-9]'}[2m]) + y{a=`[7d]`}[3m]", ["2m", "3m"]),
        ('rate(x{l="a\\"[9h]"}[4m])', ["4m"]),
        ('"unclosed [1h]', ["1h"]),
        ("[ ]" + "[" * 4000, []),
        ("[" + " " * 4000 + "1m" + " " * 4000 + "]", ["1m"]),
        ("[a[b]c]", ["a[b"]),
        ("[:5m]", []),
    ],
)
def test_range_windows(query_text: str, windows: list[str]) -> None:
    assert range_windows(query_text) == windows
