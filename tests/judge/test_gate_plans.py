"""Gates in plans: kinds, presets and the problems a plan can have, each naming its field."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from plans import PRESETS, Plan, PlanError, parse_plan

RATIO = 'sum(rate(e{s="$target"}[$window])) / sum(rate(a{s="$target"}[$window]))'
COUNT = 'sum(increase(a{s="$target"}[$window]))'


def plan(*gates: dict[str, Any], stages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "service": "shop",
        "stable": "web-1",
        "canary": "web-2",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "shop"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": list(gates),
        "stages": stages or [{"name": "ten", "weight": 10}, {"name": "half", "weight": 50}],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    return caught.value.problems


def only(data: dict[str, Any]) -> str:
    (problem,) = problems(data)
    return problem


# -- the three kinds, mixed in one plan -------------------------------------------------------


def test_three_kinds_in_one_plan_and_a_json_round_trip() -> None:
    parsed = parse_plan(
        plan(
            {"name": "errors", "query": 'rate(e{s="$canary"}[1m])', "max": 0.05},
            {"name": "vs-stable", "kind": "relative", "query": RATIO, "factor": 1.5},
            {
                "name": "tested",
                "kind": "statistical",
                "test": "two-proportion",
                "query": RATIO,
                "samples_query": COUNT,
                "min_samples": 200,
                "window": "2m",
                "step": "10s",
                "confidence": 0.99,
                "direction": "either",
                "severity": "warning",
                "dry_run": True,
            },
        )
    )
    assert [g.kind for g in parsed.gates] == ["threshold", "relative", "statistical"]
    tested = parsed.gates[2]
    assert (tested.fail_action, tested.inconclusive_action) == ("notify", "notify")
    assert tested.points_per_side == 12
    assert Plan.model_validate_json(parsed.model_dump_json()) == parsed


def test_defaults_are_the_safe_ones() -> None:
    (gate,) = parse_plan(plan({"name": "e", "query": "up", "max": 1})).gates
    assert (gate.kind, gate.severity, gate.fail_action, gate.inconclusive_action) == (
        "threshold",
        "critical",
        "rollback",
        "pause",
    )
    assert (gate.failure_limit, gate.inconclusive_limit, gate.dry_run) == (1, 3, False)


def test_target_and_window_are_filled_in_twice() -> None:
    parsed = parse_plan(plan({"name": "r", "kind": "relative", "query": RATIO, "margin": 0.001}))
    gate, values = parsed.gates[0], parsed.placeholders()
    assert values["backend"] == "shop"
    assert (
        parsed.metrics.render(gate.query, values, window=gate.window)
        == 'sum(rate(e{s="web-2"}[1m])) / sum(rate(a{s="web-2"}[1m]))'
    )
    assert parsed.metrics.render(
        gate.query, values, target="web-1", window=timedelta(seconds=10)
    ) == ('sum(rate(e{s="web-1"}[10s])) / sum(rate(a{s="web-1"}[10s]))')


# -- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("kind", ["threshold", "relative", "statistical"])
def test_every_preset_works_as_every_kind(name: str, kind: str) -> None:
    stages = [{"name": "ten", "weight": 10, "bake": "5m"}]
    parsed = parse_plan(plan({"name": "g", "preset": name, "kind": kind}, stages=stages))
    gate = parsed.gates[0]
    assert gate.kind == kind and gate.preset == name
    assert gate.min_samples == 100 and gate.samples_query is not None
    rendered = parsed.metrics.render(gate.query, parsed.placeholders(), window=gate.window)
    assert "$" not in rendered and "web-2" in rendered
    if name.startswith("haproxy"):
        assert 'proxy="shop"' in rendered


def test_a_preset_fills_only_what_the_gate_leaves_out() -> None:
    parsed = parse_plan(
        plan(
            {"name": "e", "preset": "haproxy-error-rate", "max": 0.02, "failure_limit": 4},
            {"name": "r", "preset": "haproxy-error-rate", "kind": "relative", "factor": 2},
        )
    )
    threshold, relative = parsed.gates
    assert (threshold.max, threshold.min, threshold.failure_limit) == (0.02, None, 4)
    assert threshold.describe_threshold() == "<= 2%"
    assert (relative.factor, relative.margin) == (2, 0.001)
    assert relative.describe_threshold() == "<= stable x2+0.1%"


def test_statistical_presets_default_to_their_measured_settings() -> None:
    stages = [{"name": "ten", "weight": 10, "bake": "5m"}]
    data = plan({"name": "e", "preset": "demo-error-rate", "kind": "statistical"}, stages=stages)
    (gate,) = parse_plan(data).gates
    assert (gate.test, gate.factor, gate.margin, gate.confidence) == (
        "two-proportion",
        1.2,
        0.0005,
        0.98,
    )
    assert (gate.window, gate.step, gate.failure_limit) == (
        timedelta(minutes=2),
        timedelta(seconds=10),
        2,
    )


def test_unknown_preset_lists_the_known_ones() -> None:
    problem = only(plan({"name": "e", "preset": "nginx-errors"}))
    assert problem.startswith("gates.0: unknown preset 'nginx-errors': use one of demo-error-rate")


# -- problems, each naming its field ------------------------------------------------------------


def test_a_rate_window_longer_than_the_bake_is_refused() -> None:
    stages = [{"name": "smoke", "weight": 5, "bake": "10m"}, {"name": "half", "weight": 50}]
    problem = only(plan({"name": "e", "query": "rate(x[1h])", "max": 1}, stages=stages))
    assert problem == (
        "gates.0.query: window [1h] is longer than the 10m bake of stage 'smoke'"
        " (stages.0.bake), so it would judge the stage on data from before it: shorten the"
        " window or lengthen the bake"
    )


def test_the_window_placeholder_names_the_window_field() -> None:
    stages = [{"name": "smoke", "weight": 5, "bake": "5m"}]
    gate = {"name": "e", "query": "rate(x[$window])", "max": 1, "window": "10m"}
    assert only(plan(gate, stages=stages)).startswith("gates.0.window: window 10m is longer")


def test_samples_query_windows_and_subqueries_are_checked_too() -> None:
    stages = [{"name": "smoke", "weight": 5, "bake": "5m"}]
    gate = {
        "name": "e",
        "query": 'max_over_time(rate(x{code=~"5[0-9]{2}"}[1m])[30m:1m])',
        "samples_query": "sum(increase(x[1h]))",
        "max": 1,
    }
    assert [p.split(":")[0] for p in problems(plan(gate, stages=stages))] == [
        "gates.0.query",
        "gates.0.samples_query",
    ]


def test_a_statistical_window_longer_than_the_bake_is_refused() -> None:
    stages = [{"name": "smoke", "weight": 5, "bake": "1m"}]
    data = plan({"name": "e", "preset": "demo-error-rate", "kind": "statistical"}, stages=stages)
    assert only(data).startswith("gates.0.window: window 2m is longer than the 1m bake")


def test_a_comparing_gate_cannot_judge_a_stage_without_stable_traffic() -> None:
    stages = [{"name": "ten", "weight": 10}, {"name": "all", "weight": 100}]
    data = plan({"name": "r", "preset": "haproxy-error-rate", "kind": "relative"}, stages=stages)
    assert only(data) == (
        "stages.1.gates: relative gate 'r' compares the canary with the stable, which gets no"
        " traffic at weight 100: list this stage's gates without it"
    )
    data["stages"][1]["gates"] = []
    parse_plan(data)


@pytest.mark.parametrize(
    ("gate", "problem"),
    [
        (
            {"kind": "relative", "query": 'rate(e{s="$canary"}[1m])', "factor": 2},
            "query: write the version as $target (filled with the canary, then the stable),"
            " not $canary",
        ),
        (
            {"kind": "relative", "query": "rate(e[1m])", "factor": 2},
            "query: a relative gate's query must select the version with $target",
        ),
        (
            {"kind": "relative", "query": RATIO},
            "factor 1 and margin 0 fail whenever the canary is a hair worse than the stable",
        ),
        (
            {"kind": "relative", "query": RATIO, "factor": 2, "max": 0.1},
            "max and min apply to threshold gates",
        ),
        ({"kind": "statistical", "query": RATIO}, "a statistical gate needs test: mann-whitney"),
        (
            {"kind": "statistical", "test": "two-proportion", "query": RATIO},
            "test two-proportion needs samples_query",
        ),
        (
            {"kind": "statistical", "test": "mann-whitney", "query": RATIO, "window": "30s"},
            "window 30s / step 10s gives 3 point(s) per side, and Mann-Whitney needs 4 to reach"
            " 98% confidence: lengthen window or shorten step",
        ),
        (
            {"query": "up", "max": 1, "factor": 2, "confidence": 0.9},
            "factor, confidence apply to relative, statistical and sequential gates",
        ),
        (
            {"query": "up", "max": 1, "step": "5s"},
            "step applies to statistical and sequential gates",
        ),
        (
            {"query": "up", "max": 1, "min_samples": 100},
            "min_samples 100 needs samples_query",
        ),
    ],
)
def test_gate_problems_name_the_field(gate: dict[str, Any], problem: str) -> None:
    found = only(plan({"name": "g"} | gate))
    assert found.startswith(f"gates.0: gate 'g': {problem}"), found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("on_fail", "explode"),
        ("severity", "urgent"),
        ("direction", "up"),
        ("confidence", 1.0),
        ("factor", 0.5),
        ("margin", -0.1),
        ("inconclusive_limit", 0),
        ("window", "1.5s"),
        ("kind", "magic"),
    ],
)
def test_bad_field_values_are_named(field: str, value: Any) -> None:
    gate = {"name": "g", "query": "up", "max": 1, field: value}
    assert only(plan(gate)).startswith(f"gates.0.{field}: ")


def test_placeholders_are_checked_in_the_samples_query() -> None:
    gate = {"name": "g", "query": "up", "max": 1, "samples_query": "x{a='$zone'}"}
    assert only(plan(gate)).startswith("gates.0.samples_query: unknown placeholder(s) $zone")


def test_the_demo_plan_mixes_kinds() -> None:
    from demo.example_plans import demo_plan

    parsed = parse_plan(copy.deepcopy(demo_plan("tcp://127.0.0.1:9999", "http://p:9090")))
    kinds = {g.name: (g.kind, g.dry_run) for g in parsed.gates}
    assert kinds["error-rate"] == ("relative", False)
    assert kinds["error-rate-test"] == ("statistical", True)
    assert [g.name for g in parsed.gates_for(parsed.stages[-1])] == [
        "error-rate-max",
        "p95-latency-max",
    ]
