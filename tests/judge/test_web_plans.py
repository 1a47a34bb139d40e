"""Web sources in plans: a source per gate or the plan's default, and what can go wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from demo.example_plans import TASK_SUCCESS
from plans import PlanError, parse_plan
from plans.runtime.checks import GateCheck
from plans.sources import WebSource

TASKS = {"kind": "web", "url": "http://127.0.0.1:8090/tasks?version=$target&window=$window"}
SUCCESS = {**TASK_SUCCESS, "min_samples": 50, "window": "30s"}  # the demo plan's web gate
ERRORS = {"name": "errors", "query": 'sum(rate(e{s="$canary"}[1m]))', "max": 0.05}


def plan(*gates: dict[str, Any], **sources: dict[str, Any]) -> dict[str, Any]:
    return {
        "service": "shop",
        "stable": "stable",
        "canary": "canary",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "shop"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "sources": sources,
        "gates": list(gates),
        "stages": [{"name": "ten", "weight": 10, "bake": "1m"}],
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    return caught.value.problems


def test_a_plan_mixes_prometheus_and_web_gates() -> None:
    parsed = parse_plan(plan(ERRORS, SUCCESS, tasks=TASKS))
    prometheus, web = parsed.gates
    assert parsed.source_of(prometheus) is parsed.metrics
    assert isinstance(parsed.source_of(web), WebSource)
    assert parse_plan(json.loads(parsed.model_dump_json())) == parsed


def test_a_check_carries_each_gates_source() -> None:
    parsed = parse_plan(plan(ERRORS, SUCCESS, tasks=TASKS))
    check = GateCheck(
        source=parsed.metrics,
        sources=parsed.sources,
        gates=parsed.gates,
        placeholders=parsed.placeholders(),
    )
    assert [check.source_for(g).kind for g in check.gates] == ["prometheus", "web"]
    success = parsed.gates[1]
    rendered = json.loads(
        check.source_for(success).render(
            success.query, parsed.placeholders(), window=success.window, target="stable"
        )
    )
    assert rendered == {
        "method": "GET",
        "url": "http://127.0.0.1:8090/tasks?version=stable&window=30",
        "path": "$.success_rate",
    }


@pytest.mark.parametrize(
    ("gate", "sources", "problem"),
    [
        (SUCCESS, {}, "gates.0.source: unknown source 'tasks' (sources: none defined)"),
        (
            {**SUCCESS, "query": "success_rate[["},
            {"tasks": TASKS},
            "gates.0.query: 'success_rate[[' is not a JSONPath",
        ),
        (
            SUCCESS,
            {"tasks": {**TASKS, "url": "http://127.0.0.1:8090/tasks?window=$window"}},
            "gates.0: gate 'task-success': source: a relative gate asks its web source for each"
            " version, so the source's url or body must name it with $target",
        ),
        (
            SUCCESS,
            {"tasks": {**TASKS, "url": "http://127.0.0.1:8090/tasks?v=$target&team=$team"}},
            "gates.0.query: the web source's url names unknown placeholder(s) $team",
        ),
        (
            {**SUCCESS, "window": "5m"},
            {"tasks": TASKS},
            "gates.0.window: window 5m is longer than the 1m bake",
        ),
        (
            {"name": "p", "source": "tasks", "preset": "haproxy-error-rate"},
            {"tasks": TASKS},
            "gates.0.preset: 'haproxy-error-rate' is not written for a web source",
        ),
    ],
)
def test_each_mistake_names_its_field(
    gate: dict[str, Any], sources: dict[str, Any], problem: str
) -> None:
    found = problems(plan(gate, **sources))
    assert any(p.startswith(problem) for p in found), found


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"url": "ftp://host/x"}, "write the URL as http(s)://host:port/path?query"),
        ({"headers": {"Authorization": "Bearer abc"}}, "under secret_headers"),
        ({"headers": {"bad header": "x"}}, "is not an HTTP header name"),
        ({"secret_headers": {"X-Token": "not a variable"}}, "sources.tasks.secret_headers"),
        ({"body": "{}"}, "only a POST sends a body"),
        ({"method": "DELETE"}, "sources.tasks.method"),
    ],
)
def test_a_bad_web_source_says_what_to_fix(fields: dict[str, Any], problem: str) -> None:
    found = problems(plan(SUCCESS, tasks={**TASKS, **fields}))
    assert any(problem in p for p in found), found
