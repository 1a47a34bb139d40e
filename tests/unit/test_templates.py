"""Plan templates: their ladders and durations, `template:` with overrides, `rollout init`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from plans import PlanError, RelativeGate, SequentialGate, ThresholdGate, load_plan, parse_plan
from plans.templates import TEMPLATES
from starter.cli import EXIT_ERROR, EXIT_INVALID, main
from starter.plan_init import ROUTER_EXAMPLES, render_plan

BASE: dict[str, Any] = {
    "service": "checkout",
    "stable": "checkout-v1",
    "canary": "checkout-v2",
    "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "checkout"},
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
}


def templated(name: str, **fields: Any) -> dict[str, Any]:
    return {**BASE, "template": name, **fields}


def ladder(name: str) -> list[tuple[int, timedelta]]:
    plan = parse_plan(templated(name))
    return [(s.weight, s.bake) for s in plan.stages]


DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)


def test_safe_goes_5_10_25_50_75_100_over_seven_days() -> None:
    assert ladder("safe") == [(5, DAY), (10, DAY), (25, DAY), (50, DAY), (75, DAY), (100, 2 * DAY)]
    plan = parse_plan(templated("safe"))
    assert plan.total_bake() == timedelta(days=7)
    assert [s.approval for s in plan.stages] == [False] * 4 + [True, False]


def test_fast_is_the_same_ladder_over_three_days() -> None:
    assert [w for w, _ in ladder("fast")] == [w for w, _ in ladder("safe")]
    assert parse_plan(templated("fast")).total_bake() == timedelta(days=3)
    assert parse_plan(templated("fast")).stages[4].approval


def test_instant_is_everyone_at_once_for_a_minute() -> None:
    plan = parse_plan(templated("instant"))
    assert ladder("instant") == [(100, MINUTE)]
    assert not any(s.approval for s in plan.stages)
    # At 100% there is no stable to compare with: thresholds only.
    assert all(isinstance(g, ThresholdGate) for g in plan.gates_for(plan.stages[0]))


@pytest.mark.parametrize(
    ("name", "minutes"), [("hotfix-p0", 10), ("hotfix-p1", 15), ("hotfix-p2", 30)]
)
def test_hotfixes_go_10_50_100_with_their_phase_and_30_minutes_at_100(
    name: str, minutes: int
) -> None:
    phase = timedelta(minutes=minutes)
    assert ladder(name) == [(10, phase), (50, phase), (100, 30 * MINUTE)]
    plan = parse_plan(templated(name))
    assert plan.total_bake() == 2 * phase + 30 * MINUTE
    assert not any(s.approval for s in plan.stages)
    assert {s.check_every for s in plan.stages} == {MINUTE}


def test_gates_follow_the_seed_thresholds() -> None:
    safe = {g.name: g for g in parse_plan(templated("safe")).gates}
    assert isinstance(safe["error-rate"], ThresholdGate) and safe["error-rate"].max == 0.01
    assert isinstance(safe["response-time"], ThresholdGate)
    assert safe["response-time"].max == 0.5
    assert safe["error-rate"].window == 5 * MINUTE
    hotfix = {g.name: g for g in parse_plan(templated("hotfix-p0")).gates}
    assert isinstance(hotfix["error-rate"], ThresholdGate) and hotfix["error-rate"].max == 0.02
    slower = hotfix["response-time-vs-stable"]
    assert isinstance(slower, RelativeGate) and slower.factor == 2.0
    worse = hotfix["error-rate-vs-stable"]
    assert isinstance(worse, SequentialGate) and worse.factor == 1.0
    assert (worse.test, worse.failure_limit) == ("rate", 1)


def test_a_plans_own_stages_replace_the_templates_whole_list() -> None:
    stages = [{"name": "only", "weight": 20, "bake": "1h"}]
    plan = parse_plan(templated("safe", stages=stages))
    assert [(s.name, s.weight) for s in plan.stages] == [("only", 20)]
    # Gates it did not write still come from the template.
    assert [g.name for g in plan.gates] == ["error-rate", "error-rate-vs-stable", "response-time"]


def test_a_plans_own_gates_replace_the_templates() -> None:
    gates = [{"name": "errors", "preset": "haproxy-error-rate", "max": 0.05}]
    stages = [{"name": "half", "weight": 50, "bake": "20m"}]
    plan = parse_plan(templated("hotfix-p1", gates=gates, stages=stages))
    assert [g.name for g in plan.gates] == ["errors"]


def test_a_template_does_not_change_between_plans() -> None:
    first = templated("safe")
    parse_plan(first)
    assert parse_plan(templated("safe")).stages[0].weight == 5
    assert first["template"] == "safe"  # the caller's data is left alone


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(templated("careful"))
    message = str(error.value)
    assert "template: unknown template 'careful'" in message
    for name in TEMPLATES:
        assert name in message


def test_a_template_that_is_not_a_name_is_refused() -> None:
    with pytest.raises(PlanError, match="unknown template a list: use one of safe"):
        parse_plan(templated(["safe"]))  # type: ignore[arg-type]


def test_a_problem_in_a_field_from_the_template_says_so() -> None:
    # Own gates without the template's gate names: the template's stages name them.
    gates = [{"name": "errors", "preset": "haproxy-error-rate", "max": 0.05}]
    with pytest.raises(PlanError) as error:
        parse_plan(templated("safe", gates=gates))
    problems = error.value.problems
    assert any(
        p.startswith("stages.5.gates: unknown gate 'error-rate'")
        and "stages comes from template 'safe': write the plan's own stages" in p
        for p in problems
    ), problems


def test_a_problem_in_the_plans_own_field_is_not_blamed_on_the_template() -> None:
    with pytest.raises(PlanError) as error:
        parse_plan(templated("safe", stages=[{"name": "x", "weight": 500}]))
    assert not any("template" in p for p in error.value.problems)


@pytest.mark.parametrize("router", sorted(ROUTER_EXAMPLES))
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_rendered_template_loads_as_its_template_does(name: str, router: str) -> None:
    rendered = render_plan(TEMPLATES[name], "checkout", router)
    plan = parse_plan(yaml.safe_load(rendered))
    data = yaml.safe_load(rendered)
    same = parse_plan(
        {k: v for k, v in data.items() if k not in ("gates", "stages")} | {"template": name}
    )
    assert plan.stages == same.stages
    assert plan.gates == same.gates
    assert plan.router.kind == router
    # Every gate and every stage is explained by a comment above it.
    comments = [line for line in rendered.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= len(plan.gates) + len(plan.stages)


# -- rollout init ----------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return int(exit_.value.code or 0)


def test_init_writes_a_plan_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["init", "checkout", "--template", "hotfix-p1"]) == 0
    plan = load_plan(tmp_path / "checkout.yaml")
    assert plan.service == "checkout"
    assert [s.weight for s in plan.stages] == [10, 50, 100]
    assert "wrote checkout.yaml" in capsys.readouterr().out
    assert run(["validate", "checkout.yaml"]) == 0


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("mine\n", encoding="utf-8")
    assert run(["init", "shop", "--template", "safe", "--out", str(path)]) == EXIT_ERROR
    assert path.read_text(encoding="utf-8") == "mine\n"
    assert "exists: choose another --out, or add --force" in " ".join(
        capsys.readouterr().err.split()
    )

    assert run(["init", "shop", "--template", "safe", "--out", str(path), "--force"]) == 0
    assert load_plan(path).total_bake() == timedelta(days=7)


def test_init_refuses_an_unknown_template_or_a_bad_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "p.yaml")
    assert run(["init", "shop", "--template", "careful", "--out", out]) == EXIT_INVALID
    assert "invalid choice: 'careful'" in capsys.readouterr().err
    assert run(["init", "shop front", "--template", "safe", "--out", out]) == EXIT_INVALID
    assert "is not a safe service name" in " ".join(capsys.readouterr().err.split())
    assert not Path(out).exists()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_commented_internal_users_stage_loads_once_uncommented(name: str) -> None:
    rendered = render_plan(TEMPLATES[name], "checkout", "haproxy")
    assert "# - {name: internal" in rendered and "# match_map:" in rendered
    edited = rendered.replace("# - {name: internal", "- {name: internal").replace(
        "# match_map:", "match_map:"
    )
    plan = parse_plan(yaml.safe_load(edited))
    first = plan.stages[0]
    assert (first.name, first.weight) == ("internal", 0)
    assert first.match is not None and first.match.describe() == (
        "header x-user-group exact 'internal'"
    )


def test_init_says_when_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no-such-folder" / "plan.yaml"
    assert run(["init", "shop", "--template", "fast", "--out", str(out)]) == EXIT_ERROR
    said = " ".join(capsys.readouterr().err.split())
    assert "cannot write" in said and "No such file or directory" in said


def test_on_envoy_the_templates_read_envoys_own_metrics() -> None:
    envoy = {"kind": "envoy", "admin": "http://127.0.0.1:9901", "runtime_key_prefix": "routing.co"}
    plan = parse_plan(templated("safe", router=envoy))
    assert {g.preset for g in plan.gates} == {"envoy-error-rate", "envoy-p95-latency"}
    error_rate = next(g for g in plan.gates if g.name == "error-rate")
    assert 'envoy_cluster_name="$target"' in (error_rate.query or "")
    rendered = render_plan(TEMPLATES["safe"], "checkout", "envoy")
    assert "p95 response time passes 500ms" in rendered
    assert "HAProxy's own average" not in rendered


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_on_a_flag_the_plan_written_loads_and_judges_each_variant(
    name: str, tmp_path: Path
) -> None:
    out = tmp_path / "checkout.yaml"
    args = ["init", "checkout", "--template", name, "--router", "flagd", "--out", str(out)]
    assert run(args) == 0
    plan = parse_plan(yaml.safe_load(out.read_text()))
    assert plan.router.kind == "flagd"
    assert plan.router.describe() and "checkout-release" in plan.router.describe()
    assert {g.preset for g in plan.gates} <= {"demo-error-rate", "demo-p95-latency"}
    for gate in plan.gates:
        assert 'version="$target"' in (gate.query or ""), gate.name
    assert "point their queries at your application's own" in out.read_text()
