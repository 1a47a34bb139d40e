"""Plan validation: every kind of bad plan is refused with a message that names the field."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.example_plans import demo_plan
from plans import (
    HAProxyRouter,
    Plan,
    PlanError,
    PrometheusSource,
    format_duration,
    gate_from,
    load_plan,
    parse_duration,
    parse_plan,
)

REPO = Path(__file__).resolve().parents[2]

FULL_PLAN = """\
service: checkout
version: v2.4.1
stable: checkout-stable
canary: checkout-canary
router:
  kind: haproxy
  runtime_api: unix:///run/haproxy/admin.sock
  backend: checkout
  timeout: 3s
metrics:
  kind: prometheus
  url: https://prometheus.internal:9090/
  bearer_token_env: PROM_TOKEN
  timeout: 15s
gates:
  - name: error-rate
    query: >-
      sum(rate(http_requests_total{server="$canary",code=~"5.."}[1m]))
      / sum(rate(http_requests_total{server="${canary}"}[1m]))
    max: 0.01
    failure_limit: 3
  - name: p99-latency
    query: histogram_quantile(0.99, rate(latency_bucket{server="$canary"}[1m]))
    max: 0.5
  - name: throughput
    query: sum(rate(http_requests_total{service="$service"}[1m]))
    min: 10
    max: 100000
stages:
  - name: smoke
    weight: 1
    bake: 5m
    check_every: 30s
    gates: [error-rate]
  - name: quarter
    weight: 25
    bake: 1h30m
    check_every: 1m
  - name: half
    weight: 50
    bake: 48h
    approval: true
  - name: full
    weight: 100
    bake: 7d
    gates: []
notify:
  webhook_url_env: SLACK_WEBHOOK
"""


def minimal() -> dict[str, Any]:
    """A small valid plan; each test breaks one thing in a copy of it."""
    return {
        "service": "demo",
        "stable": "stable",
        "canary": "canary",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "app"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": [{"name": "errors", "query": 'rate(x{server="$canary"}[1m])', "max": 0.05}],
        "stages": [{"name": "ten", "weight": 10}, {"name": "all", "weight": 100}],
    }


def with_value(path: str, value: Any) -> dict[str, Any]:
    """The minimal plan with the field at a dotted path (``stages.1.weight``) set to value."""
    data = copy.deepcopy(minimal())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def without(path: str) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return data


def problems_of(data: Any) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    assert caught.value.problems, "a PlanError must list at least one problem"
    return caught.value.problems


def only_problem(data: Any) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# -- valid plans -------------------------------------------------------------------------------


def test_minimal_plan_parses_with_defaults() -> None:
    plan = parse_plan(minimal())
    assert plan.workflow_id == "rollout-demo"
    assert plan.version == "canary"
    assert plan.stages[0].bake == timedelta(minutes=10)
    assert plan.stages[0].check_every == timedelta(minutes=1)
    assert plan.stages[0].approval is False
    assert plan.router.timeout == timedelta(seconds=5)
    assert plan.metrics.timeout == timedelta(seconds=10)
    assert plan.gates[0].failure_limit == 1
    assert plan.notify.webhook_url_env is None


def test_full_example_plan_parses(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(FULL_PLAN, encoding="utf-8")

    plan = load_plan(path)

    assert plan.service == "checkout"
    assert plan.version == "v2.4.1"
    assert isinstance(plan.router, HAProxyRouter)
    assert plan.router.timeout == timedelta(seconds=3)
    assert isinstance(plan.metrics, PrometheusSource)
    assert plan.metrics.url == "https://prometheus.internal:9090"
    assert plan.metrics.bearer_token_env == "PROM_TOKEN"
    assert [g.name for g in plan.gates] == ["error-rate", "p99-latency", "throughput"]
    assert plan.gates[0].failure_limit == 3
    assert plan.gates[2].describe_threshold() == ">= 10 and <= 100000"
    assert [s.weight for s in plan.stages] == [1, 25, 50, 100]
    assert [s.bake for s in plan.stages] == [
        timedelta(minutes=5),
        timedelta(hours=1, minutes=30),
        timedelta(hours=48),
        timedelta(days=7),
    ]
    assert plan.stages[0].check_every == timedelta(seconds=30)
    assert plan.stages[2].approval is True
    assert [g.name for g in plan.gates_for(plan.stages[0])] == ["error-rate"]
    assert len(plan.gates_for(plan.stages[1])) == 3
    assert plan.gates_for(plan.stages[3]) == []
    assert plan.notify.webhook_url_env == "SLACK_WEBHOOK"
    assert plan.total_bake() == timedelta(days=9, hours=1, minutes=35)


def test_demo_plans_parse() -> None:
    generated = parse_plan(demo_plan("tcp://127.0.0.1:9999", "http://127.0.0.1:9090"))
    assert generated.service == "demo"
    compose = load_plan(REPO / "demo" / "compose" / "plan.yaml")
    assert [s.weight for s in compose.stages] == [s.weight for s in generated.stages]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("48h", timedelta(hours=48)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5s", timedelta(seconds=1.5)),
        ("1.5h", timedelta(minutes=90)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 10 M ", timedelta(minutes=10)),
        ("0s", timedelta(0)),
        ("365d", timedelta(days=365)),
    ],
)
def test_durations_people_write(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    data = with_value("stages.0.bake", text)
    data["gates"] = []  # a [1m] gate cannot judge a bake this short
    assert parse_plan(data).stages[0].bake == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (0, timedelta(0)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_durations_from_numbers_are_seconds(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (30, "30s"),
        (60, "1m"),
        (600, "10m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (172800, "2d"),
        (604800, "7d"),
        (93784, "1d2h3m4s"),
        (1.5, "1.5s"),
        (0.25, "0.2s"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", ["30s", "10m", "2d", "7d", "1h30m", "1d2h3m4s"])
def test_format_reads_back_as_the_same_duration(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


def test_durations_survive_a_json_round_trip() -> None:
    data = minimal()
    data["gates"] = []  # a [1m] gate cannot judge the 1.5s bake below
    data["router"]["timeout"] = "2.5s"
    data["metrics"]["timeout"] = "250ms"
    data["stages"] = [
        {"name": "a", "weight": 1, "bake": "1.5s", "check_every": "1.5s"},
        {"name": "b", "weight": 2, "bake": "90.5s", "check_every": "1s"},
        {"name": "c", "weight": 3, "bake": "1h30m"},
        {"name": "d", "weight": 100, "bake": "7d", "check_every": "3600.25s"},
    ]
    plan = parse_plan(data)

    text = plan.model_dump_json()
    again = Plan.model_validate_json(text)

    assert again == plan
    stages = json.loads(text)["stages"]
    assert [s["bake"] for s in stages] == ["1.5s", "90.5s", "1h30m", "7d"]
    assert again.stages[1].bake.total_seconds() == 90.5
    assert again.stages[3].check_every.total_seconds() == 3600.25


def test_tiny_durations_survive_a_json_round_trip() -> None:
    data = with_value("stages.0.bake", "0.00001s")
    data["gates"] = []
    plan = parse_plan(data)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


def test_gate_render_fills_every_placeholder() -> None:
    gate = gate_from(
        name="ratio",
        query='a{s="$canary"} / b{s="${canary}"} + c{s="$stable"} + d{svc="$service"}',
        max=1,
    )
    source = PrometheusSource(url="http://127.0.0.1:9090")
    rendered = source.render(
        gate.query, {"canary": "web-2", "stable": "web-1", "service": "web"}, window=gate.window
    )
    assert rendered == 'a{s="web-2"} / b{s="web-2"} + c{s="web-1"} + d{svc="web"}'


def test_plan_placeholders_render_its_gates() -> None:
    plan = parse_plan(minimal())
    assert plan.placeholders() == {
        "canary": "canary",
        "stable": "stable",
        "service": "demo",
        "backend": "app",
    }
    assert (
        plan.metrics.render(plan.gates[0].query, plan.placeholders(), window=plan.gates[0].window)
        == 'rate(x{server="canary"}[1m])'
    )


@pytest.mark.parametrize(
    "name", ["a", "web-1", "checkout_v2", "api.internal", "ns:svc", "9lives", "a" * 63]
)
def test_safe_names_are_accepted(name: str) -> None:
    for field in ("service", "canary", "stages.0.name", "gates.0.name"):
        parse_plan(with_value(field, name))


# -- bad plans -------------------------------------------------------------------------------


def test_weights_must_increase() -> None:
    data = with_value("stages.1.weight", 10)
    assert only_problem(data) == (
        "stages.1.weight: 10 does not increase on the previous stage's 10:"
        " weights must go up stage by stage"
    )


def test_each_decreasing_weight_is_named() -> None:
    data = minimal()
    data["stages"] = [
        {"name": "a", "weight": 50},
        {"name": "b", "weight": 20},
        {"name": "c", "weight": 60},
        {"name": "d", "weight": 40},
    ]
    problems = problems_of(data)
    assert [p.split(":")[0] for p in problems] == ["stages.1.weight", "stages.3.weight"]


@pytest.mark.parametrize("weight", [101, 150, -1, -50])
def test_weight_must_be_a_percentage(weight: int) -> None:
    problem = only_problem(with_value("stages.0.weight", weight))
    assert problem == (
        f"stages.0.weight: weight {weight} is out of range: use a percentage from 0 to 100"
    )


def test_weight_must_be_a_whole_number() -> None:
    assert only_problem(with_value("stages.0.weight", 12.5)).startswith("stages.0.weight: ")


def test_weight_cannot_be_a_boolean() -> None:
    assert only_problem(with_value("stages.0.weight", True)).startswith("stages.0.weight: ")


def test_stage_gates_must_name_defined_gates() -> None:
    data = with_value("stages.1.gates", ["errors", "latency"])
    assert only_problem(data) == "stages.1.gates: unknown gate 'latency' (gates: errors)"


def test_stage_gates_without_any_gate_defined() -> None:
    data = with_value("stages.0.gates", ["errors"])
    data["gates"] = []
    assert only_problem(data) == "stages.0.gates: unknown gate 'errors' (gates: none defined)"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10x", "is not a duration"),
        ("-5m", "is not a duration"),
        ("", "is not a duration"),
        ("10", "is not a duration"),
        ("m", "is not a duration"),
        ("1h 30", "is not a duration"),
        ("1e3s", "is not a duration"),
        (True, "not true/false"),
        (False, "not true/false"),
        (None, "is not a duration"),
        ([10], "is not a duration"),
        (-5, "is negative"),
        ("400d", "is longer than a year"),
        ("366d", "is longer than a year"),
        ("53w", "is longer than a year"),
        ("99999999999999999999d", "is longer than a year"),
        (float("inf"), "is longer than a year"),
    ],
)
def test_bad_durations_name_the_field(value: Any, words: str) -> None:
    problem = only_problem(with_value("stages.1.bake", value))
    assert problem.startswith("stages.1.bake: ")
    assert words in problem
    with pytest.raises(ValueError, match=words):
        parse_duration(value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("router.timeout", "soon"),
        ("metrics.timeout", "-1s"),
        ("stages.0.check_every", "often"),
    ],
)
def test_every_duration_field_is_checked(path: str, value: str) -> None:
    assert only_problem(with_value(path, value)).startswith(f"{path}: ")


def test_check_every_must_be_at_least_a_second() -> None:
    problem = only_problem(with_value("stages.0.check_every", "500ms"))
    assert problem == "stages.0.check_every: check_every 0.5s is too short: use 1s or more"


def test_nan_duration_is_not_called_negative() -> None:
    problem = only_problem(with_value("stages.0.bake", float("nan")))
    assert problem.startswith("stages.0.bake: ")
    assert "negative" not in problem


UNSAFE_NAMES = [
    'can"ary',
    "can'ary",
    "canary}",
    "{canary",
    "can ary",
    '.*"}=~"',
    "x=~y",
    "canäry",
    "канарейка",
    "canary\u00a0",
    "a" * 64,
    "",
    "-canary",
    "_canary",
    "a/b",
    "a\nb",
    "a;b",
    "a\\b",
    "a,b",
    "[canary]",
]


@pytest.mark.parametrize(
    "path",
    ["service", "stable", "canary", "version", "router.backend", "gates.0.name", "stages.0.name"],
)
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_names_unsafe_in_promql_or_haproxy_are_refused(path: str, name: str) -> None:
    problem = only_problem(with_value(path, name))
    assert problem.startswith(f"{path}: ")
    assert "is not a safe" in problem


@pytest.mark.parametrize(
    "path",
    ["service", "stable", "canary", "version", "router.backend", "gates.0.name", "stages.0.name"],
)
def test_names_with_a_trailing_newline_are_refused(path: str) -> None:
    problem = only_problem(with_value(path, "canary\n"))
    assert problem.startswith(f"{path}: ")


def test_a_value_with_a_semicolon_is_one_problem() -> None:
    problem = only_problem(with_value("service", "a; b"))
    assert problem.startswith("service: 'a; b' is not a safe name")


@pytest.mark.parametrize(
    ("query", "unknown"),
    [
        ('rate(x{server="$foo"}[1m])', "$foo"),
        ('rate(x{server="${canary_name}"}[1m])', "$canary_name"),
        ('x{a="$zone", b="$region", c="$canary"}', "$region, $zone"),
    ],
)
def test_unknown_query_placeholders_are_named(query: str, unknown: str) -> None:
    problem = only_problem(with_value("gates.0.query", query))
    assert problem.startswith(
        f"gates.0.query: unknown placeholder(s) {unknown}: use $canary, $stable, $service"
    )


def test_query_cannot_be_blank() -> None:
    problem = only_problem(with_value("gates.0.query", "   "))
    assert problem == "gates.0.query: the query is empty: write a PromQL expression"


def test_gate_needs_a_threshold() -> None:
    data = minimal()
    data["gates"] = [{"name": "errors", "query": "up"}]
    assert only_problem(data) == ("gates.0: gate 'errors' needs a threshold: set max, min or both")


def test_gate_min_cannot_exceed_max() -> None:
    data = minimal()
    data["gates"] = [{"name": "errors", "query": "up", "min": 0.5, "max": 0.1}]
    assert only_problem(data) == "gates.0: gate 'errors': min 0.5 is above max 0.1"


def test_gate_min_equal_to_max_is_allowed() -> None:
    data = minimal()
    data["gates"] = [{"name": "up", "query": "up", "min": 1, "max": 1}]
    assert parse_plan(data).gates[0].describe_threshold() == ">= 1 and <= 1"


@pytest.mark.parametrize("bound", ["max", "min"])
def test_gate_threshold_cannot_be_nan(bound: str) -> None:
    data = minimal()
    data["gates"] = [{"name": "errors", "query": "up", bound: float("nan")}]
    assert only_problem(data) == "gates.0: gate 'errors': a threshold cannot be NaN"


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_failure_limit_range(limit: int) -> None:
    problem = only_problem(with_value("gates.0.failure_limit", limit))
    assert problem.startswith("gates.0.failure_limit: ")


def test_stable_and_canary_must_differ() -> None:
    problem = only_problem(with_value("canary", "stable"))
    assert problem == "stable and canary are both 'stable': name two servers"


def test_gate_names_must_be_unique() -> None:
    data = minimal()
    data["gates"] = [
        {"name": "errors", "query": "a", "max": 1},
        {"name": "latency", "query": "b", "max": 1},
        {"name": "errors", "query": "c", "max": 2},
    ]
    assert only_problem(data) == "gates: names must be unique, repeated: errors"


def test_stage_names_must_be_unique() -> None:
    data = minimal()
    data["stages"] = [
        {"name": "step", "weight": 10},
        {"name": "step", "weight": 50},
        {"name": "last", "weight": 100},
    ]
    assert only_problem(data) == "stages: names must be unique, repeated: step"


def test_plan_wide_problems_are_all_listed() -> None:
    data = minimal()
    data["canary"] = "stable"
    data["stages"] = [
        {"name": "a", "weight": 50, "gates": ["nope"]},
        {"name": "a", "weight": 40},
    ]
    problems = problems_of(data)
    assert problems == [
        "stable and canary are both 'stable': name two servers",
        "stages: names must be unique, repeated: a",
        "stages.1.weight: 40 does not increase on the previous stage's 50:"
        " weights must go up stage by stage",
        "stages.0.gates: unknown gate 'nope' (gates: errors)",
    ]


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        ("", "servise"),
        ("stages.0", "wieght"),
        ("gates.0", "maximum"),
        ("router", "socket"),
        ("metrics", "adress"),
        ("notify", "slack"),
    ],
)
def test_unknown_fields_are_refused(path: str, typo: str) -> None:
    data = minimal()
    data.setdefault("notify", {})
    node: Any = data
    for part in filter(None, path.split(".")):
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[typo] = "x"
    where = f"{path}.{typo}" if path else typo
    assert only_problem(data) == f"{where}: unknown field: remove it or check its spelling"


@pytest.mark.parametrize(
    "path",
    [
        "service",
        "stable",
        "canary",
        "router",
        "metrics",
        "stages",
        "router.runtime_api",
        "router.backend",
        "metrics.url",
        "gates.0.name",
        "gates.0.query",
        "stages.1.name",
        "stages.1.weight",
    ],
)
def test_missing_required_fields_are_named(path: str) -> None:
    assert only_problem(without(path)) == f"{path}: missing: this field is required"


def test_every_field_problem_is_listed_at_once() -> None:
    data = minimal()
    data["service"] = "bad name"
    data["metrics"]["url"] = "prometheus:9090"
    data["stages"] = [{"name": "a", "weight": 150}, {"name": "b", "wieght": 100}]
    problems = problems_of(data)
    assert sorted(p.split(": ")[0] for p in problems) == [
        "metrics.url",
        "service",
        "stages.0.weight",
        "stages.1.weight",
        "stages.1.wieght",
    ]


@pytest.mark.parametrize(
    ("runtime_api", "hint"),
    [
        ("tcp://:9999", "tcp://HOST:PORT"),
        ("tcp://haproxy", "tcp://HOST:PORT"),
        ("tcp://haproxy:", "tcp://HOST:PORT"),
        ("tcp://haproxy:0", "tcp://HOST:PORT"),
        ("tcp://haproxy:65536", "tcp://HOST:PORT"),
        ("tcp://haproxy:http", "tcp://HOST:PORT"),
        ("tcp://haproxy:9999/admin", "tcp://HOST:PORT"),
        ("haproxy:9999", "unix:///path/admin.sock"),
        ("http://haproxy:9999", "unix:///path/admin.sock"),
        ("run/admin.sock", "unix:///path/admin.sock"),
        ("", "unix:///path/admin.sock"),
    ],
)
def test_malformed_runtime_api(runtime_api: str, hint: str) -> None:
    problem = only_problem(with_value("router.runtime_api", runtime_api))
    assert problem.startswith("router.runtime_api: ")
    assert hint in problem


@pytest.mark.parametrize(
    "runtime_api",
    ["unix:///run/haproxy/admin.sock", "/run/haproxy/admin.sock", "tcp://10.0.0.5:9999"],
)
def test_runtime_api_forms(runtime_api: str) -> None:
    assert parse_plan(with_value("router.runtime_api", runtime_api)).router.runtime_api == (
        runtime_api
    )


def test_runtime_api_needs_a_socket_path() -> None:
    assert only_problem(with_value("router.runtime_api", "unix://")).startswith(
        "router.runtime_api: "
    )


def test_router_kind_must_be_known() -> None:
    data = with_value("router.kind", "nginx")
    assert only_problem(data).startswith("router: ")


@pytest.mark.parametrize(
    "url", ["prometheus:9090", "ftp://prometheus:9090", "http://", "http:///metrics", " http://p"]
)
def test_malformed_prometheus_url(url: str) -> None:
    problem = only_problem(with_value("metrics.url", url))
    assert problem.startswith("metrics.url: ")
    assert "http(s)://host:port" in problem


@pytest.mark.parametrize("url", ["http://prom etheus:9090", "http://prometheus:port"])
def test_prometheus_url_is_checked_to_the_end(url: str) -> None:
    assert only_problem(with_value("metrics.url", url)).startswith("metrics.url: ")


@pytest.mark.parametrize(
    "name", ["1TOKEN", "MY-TOKEN", "MY TOKEN", "$TOKEN", "", "TÖKEN", "A" * 129]
)
@pytest.mark.parametrize("path", ["metrics.bearer_token_env", "notify.webhook_url_env"])
def test_environment_variable_names_are_checked(path: str, name: str) -> None:
    data = minimal()
    data["notify"] = {}
    section, field = path.split(".")
    data[section][field] = name
    problem = only_problem(data)
    assert problem.startswith(f"{path}: ")
    assert "is not an environment variable name" in problem


def test_environment_variable_name_with_trailing_newline_is_refused() -> None:
    data = with_value("notify", {"webhook_url_env": "HOOK\n"})
    assert only_problem(data).startswith("notify.webhook_url_env: ")


def test_stages_cannot_be_empty() -> None:
    assert only_problem(with_value("stages", [])) == "stages: list at least one stage"


@pytest.mark.parametrize(
    ("data", "kind"),
    [(["service", "demo"], "list"), ("service: demo", "str"), (42, "int")],
)
def test_plan_must_be_a_mapping(data: Any, kind: str) -> None:
    assert only_problem(data) == f"the plan must be a mapping of fields, not {kind}"


def test_an_empty_plan_says_so() -> None:
    assert only_problem(None) == "the plan is empty: write its fields (see docs/plans.md)"


# -- plan files ------------------------------------------------------------------------------


def test_load_plan_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    assert load_plan(str(path)) == parse_plan(minimal())


def test_load_plan_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(with_value("stages.0.weight", 101)), encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path} is not valid (1 problem(s)):\n  - stages.0.weight")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("- service: demo\n- stable: a\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.problems == ["the plan must be a mapping of fields, not list"]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert len(caught.value.problems) == 1


@pytest.mark.parametrize("text", ["service: [demo\n", "service: demo\n  stable: x\n", "a: b: c\n"])
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    [problem] = caught.value.problems
    assert problem.startswith("not valid YAML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.problems == [f"cannot read {path}: No such file or directory"]


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path)
    assert caught.value.problems == [f"cannot read {tmp_path}: Is a directory"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(b"service: d\xe9mo\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(path) in caught.value.problems[0]
