"""The flagd router in a plan: its fields, what it owns, and the messages for bad ones."""

from __future__ import annotations

from typing import Any

import pytest

from demo.example_plans import flagd_demo_plan
from plans import FlagdRouter, PlanError, parse_plan


def plan_with(router: dict[str, Any]) -> dict[str, Any]:
    data = flagd_demo_plan("/srv/flags/flags.json", "http://127.0.0.1:9090")
    data["router"] = router
    return data


def problems(router: dict[str, Any]) -> str:
    with pytest.raises(PlanError) as error:
        parse_plan(plan_with(router))
    return str(error.value)


def test_demo_plan_is_valid_and_owns_one_flag_of_one_file() -> None:
    plan = parse_plan(flagd_demo_plan("/srv/flags/flags.json", "http://127.0.0.1:9090"))
    router = plan.router
    assert isinstance(router, FlagdRouter)
    assert router.max_weight == 100
    assert router.target_key() == "flagd /srv/flags/flags.json flag demo-version"
    assert router.describe() == "flagd flag demo-version in /srv/flags/flags.json"
    assert plan.target_lease_id.startswith("target-flagd-")
    # The variants are the plan's stable and canary; gates read them as `version` labels.
    assert (plan.stable, plan.canary) == ("stable", "canary")
    assert plan.placeholders()["flag"] == "demo-version"


def test_two_flags_of_one_file_are_two_targets() -> None:
    a = FlagdRouter(file="/srv/flags.json", flag="checkout")
    b = FlagdRouter(file="/srv/flags.json", flag="search")
    c = FlagdRouter(file="/srv/./flags.json", flag="checkout")
    assert a.target_key() != b.target_key()
    # One file written two ways is still one target.
    assert a.target_key() == c.target_key()


def test_relative_path_is_refused_with_the_fix() -> None:
    text = problems({"kind": "flagd", "file": "flags.json", "flag": "demo-version"})
    assert "router.file: 'flags.json' is not an absolute path" in text
    assert "like /etc/flagd/flags.json" in text


def test_folder_and_yaml_are_refused() -> None:
    assert "names a folder, not a file" in problems(
        {"kind": "flagd", "file": "/srv/flags/", "flag": "f"}
    )
    text = problems({"kind": "flagd", "file": "/srv/flags.yaml", "flag": "f"})
    assert "router.file: '/srv/flags.yaml' does not end in .json" in text


def test_unsafe_flag_key_and_unknown_field_are_named() -> None:
    text = problems({"kind": "flagd", "file": "/srv/f.json", "flag": "a b", "variants": {}})
    assert "router.flag: 'a b' is not a safe flag key" in text
    assert "router.variants: unknown field" in text


def test_missing_fields_are_named() -> None:
    text = problems({"kind": "flagd"})
    assert "router.file" in text and "router.flag" in text


def test_haproxy_placeholder_is_unknown_on_a_flag() -> None:
    data = plan_with({"kind": "flagd", "file": "/srv/f.json", "flag": "f"})
    data["gates"][0] = {"name": "hp", "preset": "haproxy-error-rate", "max": 0.05}
    with pytest.raises(PlanError) as error:
        parse_plan(data)
    assert "$backend" in str(error.value)
