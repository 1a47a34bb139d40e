"""A stage's `match`: its validation, the routers that can do it, its place in a split."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from activities.routers.haproxy_match import entries, map_key, match_of
from demo.configs import HAProxyLayout, haproxy_config
from demo.example_plans import demo_plan
from devstack.configs import render_haproxy
from devstack.info import DEFAULT_PORTS, stack_info
from plans import HAProxyRouter, PlanError, RequestMatch, TrafficSplit, parse_plan
from plans.runtime.progress import RolloutProgress
from starter import render
from starter.cli import main
from workflows.rollout.status import sentence, status_of

MAP = "/etc/haproxy/app-canary.map"
MATCH_FIELDS = {"header": "x-user-group", "exact": "internal"}

PLAN: dict[str, Any] = {
    "service": "checkout",
    "stable": "stable",
    "canary": "canary",
    "router": {
        "kind": "haproxy",
        "runtime_api": "tcp://127.0.0.1:9999",
        "backend": "app",
        "match_map": MAP,
    },
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
    "stages": [
        {
            "name": "internal",
            "weight": 0,
            "bake": "1h",
            "match": {"header": "x-user-group", "exact": "internal"},
        },
        {"name": "canary-10", "weight": 10, "bake": "1h"},
        {"name": "full", "weight": 100, "bake": "1h"},
    ],
}


def plan_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(PLAN)
    for path, value in changes.items():
        where: Any = data
        *parents, last = path.split("__")
        for part in parents:
            where = where[int(part)] if part.isdigit() else where[part]
        if value is None:
            del where[last]
        else:
            where[last] = value
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as error:
        parse_plan(data)
    return error.value.problems


def test_internal_users_first_loads() -> None:
    plan = parse_plan(PLAN)
    assert plan.stages[0].match == RequestMatch(header="x-user-group", exact="internal")
    assert plan.stages[1].match is None


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"header": "x", "cookie": "y", "exact": "v"}, "name exactly one of header or cookie"),
        ({"exact": "v"}, "name exactly one of header or cookie"),
        ({"header": "x"}, "give exactly one of exact, prefix or regex"),
        (
            {"header": "x", "exact": "v", "prefix": "w"},
            "give exactly one of exact, prefix or regex",
        ),
        ({"header": "x y", "exact": "v"}, "is not a header name this can match"),
        ({"cookie": "a;b", "exact": "v"}, "is not a cookie name this can match"),
        ({"header": "x", "exact": "a b"}, "cannot be matched: use 1-200 letters"),
        ({"header": "x", "prefix": 'a"'}, "cannot be matched"),
        ({"header": "x", "regex": "beta-("}, "does not compile"),
        ({"header": "x", "regex": "a b"}, "write \\x20"),
        ({"header": "x", "regex": "a;b"}, "\\x3b"),
        ({"header": "x", "exact": "v", "weight": 3}, "unknown field"),
    ],
)
def test_a_bad_match_names_its_field_and_the_fix(match: dict[str, Any], expected: str) -> None:
    found = problems(plan_with(stages__0__match=match))
    assert any(p.startswith("stages.0.match") and expected in p for p in found), found


def test_match_on_a_stage_at_100_is_refused() -> None:
    data = plan_with(stages__2__match={"cookie": "beta", "exact": "yes"})
    assert any("a stage at weight 100 already sends every request" in p for p in problems(data))


def test_haproxy_needs_the_map_its_rule_reads() -> None:
    found = problems(plan_with(router__match_map=None))
    assert len(found) == 1
    assert found[0].startswith("router.match_map: stages with match need the map file")


def test_the_map_path_must_be_absolute_and_plain() -> None:
    found = problems(plan_with(router__match_map="maps/app canary.map"))
    assert any(p.startswith("router.match_map:") for p in found), found


def test_a_plan_without_match_needs_no_map() -> None:
    data = plan_with(router__match_map=None, stages__0__match=None, stages__0__weight=5)
    assert parse_plan(data).router.match_map is None  # type: ignore[union-attr]


def test_a_router_that_cannot_route_by_header_rejects_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(HAProxyRouter, "supports_match", False)
    assert problems(plan_with()) == [
        "stages.0.match: router haproxy cannot route by header or cookie; remove match or use flagd"
    ]


def test_a_split_routes_like_another_only_with_the_same_match() -> None:
    internal = RequestMatch(header="x-user-group", exact="internal")
    assert TrafficSplit.canary_percent(10, internal).routes_like(
        TrafficSplit(stable_weight=180, canary_weight=20, match=internal)
    )
    assert not TrafficSplit.canary_percent(10, internal).routes_like(
        TrafficSplit.canary_percent(10)
    )
    assert not TrafficSplit.canary_percent(0).routes_like(
        TrafficSplit.canary_percent(0, RequestMatch(header="x-user-group", exact="other"))
    )
    assert "and every request with header x-user-group exact 'internal'" in str(
        TrafficSplit.canary_percent(0, internal)
    )


def test_a_split_recorded_before_matches_reads_as_no_match() -> None:
    assert TrafficSplit.model_validate({"stable_weight": 90, "canary_weight": 10}).match is None


@pytest.mark.parametrize(
    "match",
    [
        {"header": "x-user-group", "exact": "internal"},
        {"header": "x-b", "prefix": "a:b/c"},
        {"cookie": "tier", "regex": r"gold|v\d+"},
    ],
)
def test_a_match_is_read_back_from_the_entry_it_writes(match: dict[str, str]) -> None:
    wanted = RequestMatch(**match)
    assert RequestMatch.decode(wanted.encode()) == wanted
    line = f"0x55d0 {map_key(wanted)} {wanted.encode()}"
    assert match_of(entries(line)) == wanted


def test_map_entries_not_written_by_a_rollout_are_named() -> None:
    assert match_of([]) is None
    found = match_of(entries("0x1 ^x:.* someone\n0x2 ^y:.* other"))
    assert isinstance(found, str) and found.startswith("2 entries no rollout wrote")
    wanted = RequestMatch(header="x", exact="a")
    # Its value says one match, its key another: not ours.
    assert isinstance(match_of([("0x1", map_key(wanted), "header:x:exact:b")]), str)
    assert RequestMatch.decode("header:x:sometimes:b") is None
    with pytest.raises(ValidationError):
        RequestMatch(header="x")


def test_validate_shows_a_stages_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN, sort_keys=False), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["validate", str(path)])
    assert exit_.value.code in (0, None)
    shown = " ".join(capsys.readouterr().out.split())
    assert "1. internal: 0% and every request with header x-user-group exact 'internal' for 1h" in (
        shown
    )
    assert "2. canary-10: 10% for 1h" in shown


def test_the_dev_stack_routes_its_match_map(tmp_path: Path) -> None:
    info = stack_info(tmp_path, dict(DEFAULT_PORTS))
    rule = f"use-server canary if {{ req.hdrs,map_reg({tmp_path}/app-canary.map) -m found }}"
    assert f"    {rule}" in render_haproxy(info).splitlines()
    plan = parse_plan(
        demo_plan(info.haproxy_admin_tcp, info.prometheus_url, match_map=info.haproxy_match_map)
    )
    assert plan.router.match_map == info.haproxy_match_map  # type: ignore[union-attr]
    assert "use-server" not in haproxy_config(
        HAProxyLayout("*:1", "*:2", "127.0.0.1:3", "a:1", "b:1")
    )


def test_status_shows_the_match_beside_the_weight() -> None:
    p = RolloutProgress(canary_weight=0, canary_match=RequestMatch(**MATCH_FIELDS))
    plan = parse_plan(PLAN)
    answer = status_of(plan, p, datetime(2026, 11, 22, tzinfo=UTC))
    assert answer.canary_match == "header x-user-group exact 'internal'"
    assert "canary 0% + header x-user-group exact 'internal'" in render.progress_line(answer)
    assert "canary at 0% and every request with header x-user-group exact 'internal'," in (
        sentence(plan, p)
    )
    plain = status_of(plan, RolloutProgress(canary_weight=10), datetime(2026, 11, 22, tzinfo=UTC))
    assert plain.canary_match == "" and "+" not in render.progress_line(plain)
