"""Experiment plans: what validates, and what each mistake is told to fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from plans.errors import PlanError
from plans.experiment import is_experiment_plan, load_any_plan, parse_experiment_plan
from plans.plan import Plan
from workflows.experiment import decisions

BASE: dict[str, Any] = {
    "service": "shop",
    "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "shop"},
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
    "gates": [
        {"name": "conversion", "preset": "haproxy-success-rate", "kind": "sequential"},
        {"name": "errors", "preset": "haproxy-error-rate", "kind": "sequential"},
        {"name": "errors-now", "preset": "haproxy-error-rate", "kind": "relative"},
    ],
    "experiment": {
        "control": "a",
        "variants": [{"name": "a", "share": 50}, {"name": "b", "share": 50}],
        "primary": "conversion",
        "check_every": "1m",
        "max_duration": "3d",
    },
}


def plan_with(**experiment: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["experiment"].update(experiment)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as error:
        parse_experiment_plan(data)
    return error.value.problems


def test_a_plan_with_an_experiment_validates_with_its_gates() -> None:
    plan = parse_experiment_plan(copy.deepcopy(BASE))
    assert is_experiment_plan(BASE)
    assert plan.experiment.challengers == ["b"]
    assert plan.primary.name == "conversion"
    # Guardrails default to every gate but the primary.
    assert [g.name for g in plan.guardrails] == ["errors", "errors-now"]
    assert plan.placeholders("b")["canary"] == "b"
    assert plan.placeholders("b")["stable"] == "a"
    assert plan.workflow_id == "rollout-shop"


def test_load_any_plan_tells_an_experiment_from_a_rollout(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert load_any_plan(str(path)).experiment.control == "a"  # type: ignore[union-attr]
    rollout = {k: v for k, v in BASE.items() if k != "experiment"} | {
        "stable": "a",
        "canary": "b",
        "stages": [{"name": "ten", "weight": 10}],
    }
    path.write_text(yaml.safe_dump(rollout))
    assert isinstance(load_any_plan(str(path)), Plan)


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        (
            {"variants": [{"name": "a", "share": 60}, {"name": "b", "share": 30}]},
            "experiment.variants: the shares add up to 90 (60 + 30): make them add up to 100",
        ),
        (
            {"variants": [{"name": "a", "share": 100}]},
            "experiment.variants.0.share: share 100 is out of range",
        ),
        (
            {"variants": [{"name": n, "share": 20} for n in "abcde"]},
            "experiment.variants: 5 variants: run 2 to 4",
        ),
        ({"control": "z"}, "experiment.control: 'z' is none of the variants (a, b)"),
        ({"primary": "nope"}, "experiment.primary: unknown gate 'nope'"),
        ({"primary": "errors-now"}, "the primary gate must be kind: sequential"),
        ({"guardrails": ["conversion"]}, "is the primary gate: list it once"),
        ({"guardrails": ["latency"]}, "experiment.guardrails.0: unknown gate 'latency'"),
        ({"check_every": "0s"}, "check_every 0s is too short"),
        ({"max_duration": "30s"}, "is shorter than check_every 1m"),
        ({"winner": "b"}, "experiment.winner: unknown field"),
    ],
)
def test_each_mistake_says_what_to_fix(experiment: dict[str, Any], expected: str) -> None:
    found = problems(plan_with(**experiment))
    assert any(expected in p for p in found), found


def test_a_rollout_s_fields_are_refused_with_the_reason() -> None:
    data = copy.deepcopy(BASE) | {"stages": [{"name": "ten", "weight": 10}], "canary": "b"}
    found = problems(data)
    assert any(p.startswith("stages: an experiment runs its variants") for p in found)
    assert any(p.startswith("canary: the variants name the servers") for p in found)


def test_notify_channels_are_checked_as_a_rollout_s() -> None:
    data = copy.deepcopy(BASE) | {
        "notify": {"channels": [{"name": "chat", "url_env": "ROLLOUT_CHAT_URL"}]}
    }
    channels = parse_experiment_plan(data).plan.notify.channels
    assert [c.name for c in channels] == ["chat"]
    data["notify"]["channels"][0]["url_env"] = "https://hooks.example.com/x"
    assert any("names the environment variable" in p for p in problems(data))


def test_every_router_runs_experiments() -> None:
    data = copy.deepcopy(BASE)
    # The demo's presets: the haproxy ones read the backend's metrics.
    for gate in data["gates"]:
        gate["preset"] = "demo-error-rate"
    data["router"] = {
        "kind": "envoy",
        "admin": "http://127.0.0.1:9901",
        "runtime_key_prefix": "routing.shop",
    }
    assert parse_experiment_plan(data).router.kind == "envoy"
    data["router"] = {"kind": "flagd", "file": "/etc/flags/flags.json", "flag": "checkout"}
    assert parse_experiment_plan(data).router.kind == "flagd"


def test_the_rest_is_checked_as_a_rollout_plan_is() -> None:
    data = copy.deepcopy(BASE)
    data["gates"][1]["window"] = "5d"  # longer than max_duration
    found = problems(data)
    assert any("the experiment (experiment.max_duration)" in p for p in found), found


def test_which_way_is_better_and_the_split_confidence() -> None:
    plan = parse_experiment_plan(copy.deepcopy(BASE))
    # A success rate's regression is a decrease: higher is better.
    assert plan.primary.direction == "decrease"
    assert not decisions.lower_is_better(plan.primary)
    assert decisions.split_confidence(plan.primary, 3).confidence == pytest.approx(1 - 0.02 / 3)
    assert decisions.without({"a": 50, "b": 25, "c": 25}, "c", "a") == {"a": 75, "b": 25, "c": 0}
