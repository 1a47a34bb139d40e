"""The fleet plan: targets, waves, the failure policy, and each target's rollout plan."""

from __future__ import annotations

from typing import Any

import pytest

from plans.errors import PlanError
from plans.release_plan import is_release_plan, parse_release_plan


def fleet(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": "checkout",
        "version": "v2.5.0",
        "stable": "stable",
        "canary": "canary",
        "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "$region"},
        "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": [
            {
                "name": "error-rate",
                "query": 'sum(rate(errors{region="$region",server="$canary"}[1m]))',
                "max": 0.05,
            }
        ],
        "stages": [
            {"name": "canary", "weight": 10, "bake": "10m", "check_every": "1m"},
            {"name": "full", "weight": 100, "bake": "10m", "check_every": "1m"},
        ],
        "targets": {
            "staging": {"placeholders": {"region": "staging"}},
            "eu": {"placeholders": {"region": "eu"}},
            "us-west": {"placeholders": {"region": "us-west"}},
            "us-east": {"placeholders": {"region": "us-east"}},
        },
        "waves": [
            {"targets": ["staging"]},
            {"targets": ["eu"], "approval": True},
            {"targets": ["us-west", "us-east"], "max_parallel": 2, "bake_between": "30m"},
        ],
    }
    data.update(overrides)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_release_plan(data)
    return caught.value.problems


def test_each_target_gets_its_own_plan_with_placeholders_filled() -> None:
    release = parse_release_plan(fleet())
    assert list(release.targets) == ["staging", "eu", "us-west", "us-east"]
    eu = release.targets["eu"]
    assert eu.service == "checkout"
    assert eu.router.backend == "eu"  # type: ignore[union-attr]
    assert 'region="eu"' in eu.gates[0].query  # type: ignore[union-attr]
    assert "$canary" in eu.gates[0].query  # type: ignore[union-attr]
    assert release.on_target_failure == "halt"
    assert release.waves[2].max_parallel == 2
    assert release.waves[2].bake_between.total_seconds() == 1800
    assert release.workflow_id == "release-checkout"
    assert release.child_id("us-east") == "rollout-checkout-us-east"
    assert release.wave_of("us-west") == 2


def test_a_target_or_a_wave_may_override_router_and_stages() -> None:
    data = fleet()
    data["targets"]["staging"]["router"] = {
        "kind": "haproxy",
        "runtime_api": "tcp://127.0.0.1:9000",
        "backend": "stage",
    }
    data["targets"]["staging"]["stages"] = [{"name": "all", "weight": 100, "bake": "1m"}]
    data["waves"][1]["stages"] = [{"name": "half", "weight": 50, "bake": "5m"}]
    release = parse_release_plan(data)
    assert release.targets["staging"].router.backend == "stage"  # type: ignore[union-attr]
    assert [s.name for s in release.targets["staging"].stages] == ["all"]
    assert [s.name for s in release.targets["eu"].stages] == ["half"]
    assert [s.name for s in release.targets["us-east"].stages] == ["canary", "full"]


def test_rollback_all_is_read() -> None:
    assert (
        parse_release_plan(fleet(on_target_failure="rollback_all")).on_target_failure
        == "rollback_all"
    )


def test_unknown_policy_is_refused() -> None:
    found = problems(fleet(on_target_failure="retry"))
    assert any(p.startswith("on_target_failure:") for p in found)


def test_waves_must_name_known_targets_each_once() -> None:
    data = fleet(
        waves=[{"targets": ["staging", "mars"]}, {"targets": ["eu", "staging", "us-west"]}]
    )
    found = problems(data)
    assert any("waves.0.targets: unknown target 'mars'" in p for p in found)
    assert any("target 'staging' is in 2 waves" in p for p in found)
    assert any(p.startswith("targets.us-east: in no wave") for p in found)


def test_a_target_missing_its_placeholder_is_named() -> None:
    data = fleet()
    data["targets"]["eu"] = {}
    found = problems(data)
    assert any(p.startswith("targets.eu: ") and "$region" in p for p in found), found


def test_reserved_placeholders_are_refused() -> None:
    data = fleet()
    data["targets"]["eu"]["placeholders"]["canary"] = "x"
    found = problems(data)
    assert any("targets.eu.placeholders.canary" in p for p in found)


def test_two_targets_on_one_backend_are_refused() -> None:
    data = fleet()
    data["targets"]["eu"]["placeholders"]["region"] = "staging"
    found = problems(data)
    same = "targets.eu.router: the same router target as 'staging'"
    assert any(p.startswith(same) for p in found)


def test_bad_wave_fields_say_where() -> None:
    data = fleet()
    data["waves"][2]["max_parallel"] = 0
    data["waves"][1]["extra"] = 1
    found = problems(data)
    assert any(p.startswith("waves.2.max_parallel:") for p in found)
    assert any(p.startswith("waves.1.extra: unknown field") for p in found)


def test_is_fleet() -> None:
    assert is_release_plan(fleet())
    assert not is_release_plan({"service": "x"})


def test_the_dev_stack_fleet_plan_is_valid() -> None:
    from devstack.fleet import FleetStack, FleetTargetParts, fleet_plan

    parts = FleetTargetParts(app_port=1, stable_port=2, canary_port=3)
    stack = FleetStack(
        targets={n: parts for n in ("staging", "eu", "us-west", "us-east")},
        haproxy_admin_tcp="tcp://127.0.0.1:9999",
        haproxy_metrics_port=4,
        prometheus_url="http://127.0.0.1:9090",
        plan_file="fleet.yaml",
    )
    release = parse_release_plan(fleet_plan(stack, on_target_failure="rollback_all"))
    assert [w.targets for w in release.waves] == [["staging"], ["eu"], ["us-west", "us-east"]]
    assert 'region="us-east"' in release.targets["us-east"].gates[0].query  # type: ignore[union-attr]
