"""The Envoy router's plan model: a loopback admin URL, a runtime key prefix, clear refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from demo.example_plans import envoy_demo_plan
from plans import EnvoyRouter, PlanError, parse_plan
from plans.routers import ROUTER_KINDS


def plan_with(router: dict[str, Any]) -> dict[str, Any]:
    data = envoy_demo_plan("http://127.0.0.1:9901", "http://127.0.0.1:9090")
    data["router"] = {"kind": "envoy", **router}
    return data


def problems(router: dict[str, Any]) -> str:
    with pytest.raises(PlanError) as error:
        parse_plan(plan_with(router))
    return str(error.value)


def test_envoy_is_a_router_kind() -> None:
    assert ROUTER_KINDS["envoy"] is EnvoyRouter


@pytest.mark.parametrize(
    "admin",
    [
        "http://127.0.0.1:9901",
        "http://127.0.0.1:9901/",
        "http://localhost:9901",
        "http://[::1]:9901",
    ],
)
def test_loopback_admin_addresses_are_taken(admin: str) -> None:
    plan = parse_plan(plan_with({"admin": admin, "runtime_key_prefix": "routing.app"}))
    assert isinstance(plan.router, EnvoyRouter)
    assert plan.router.admin == admin.rstrip("/")
    assert plan.router.timeout == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("admin", "says"),
    [
        ("http://10.0.0.7:9901", "must be on this machine"),
        ("http://envoy:9901", "must be on this machine"),
        ("http://0.0.0.0:9901", "must be on this machine"),
        ("https://127.0.0.1:9901", "speaks plain HTTP"),
        ("tcp://127.0.0.1:9901", "speaks plain HTTP"),
        ("127.0.0.1:9901", "speaks plain HTTP"),
        ("http://127.0.0.1", "name the admin port"),
        ("http://127.0.0.1:0", "name the admin port"),
        ("http://127.0.0.1:70000", "port from 1 to 65535"),
        ("http://127.0.0.1:9901/runtime", "no path, query or user"),
        ("http://127.0.0.1:9901/?a=b", "no path, query or user"),
        ("http://admin@127.0.0.1:9901", "no path, query or user"),
    ],
)
def test_bad_admin_addresses_say_how_to_write_one(admin: str, says: str) -> None:
    text = problems({"admin": admin, "runtime_key_prefix": "routing.app"})
    assert "router.admin" in text, text
    assert says in text, text
    assert "http://127.0.0.1:PORT" in text or "loopback" in text, text


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        ".routing",
        "routing.",
        "routing..app",
        "routing app",
        "routing.app&x=1",
        "a=b",
        "r" * 201,
    ],
)
def test_bad_runtime_key_prefixes_are_refused(prefix: str) -> None:
    text = problems({"admin": "http://127.0.0.1:9901", "runtime_key_prefix": prefix})
    assert "router.runtime_key_prefix" in text, text
    assert "is not a runtime key prefix" in text and "routing.checkout" in text, text


def test_missing_fields_and_unknown_ones_are_named() -> None:
    text = problems({"admin": "http://127.0.0.1:9901", "backend": "app"})
    assert "runtime_key_prefix" in text and "backend" in text, text


def test_target_key_and_description_name_the_admin_and_the_prefix() -> None:
    router = EnvoyRouter(admin="http://127.0.0.1:9901", runtime_key_prefix="routing.app")
    other = EnvoyRouter(admin="http://127.0.0.1:9901", runtime_key_prefix="routing.shop")
    assert router.target_key() == "envoy http://127.0.0.1:9901 runtime routing.app"
    assert router.target_key() != other.target_key()
    assert router.describe() == "envoy routing.app via http://127.0.0.1:9901"
    assert router.runtime_key("canary") == "routing.app.canary"
    assert router.placeholders() == {}


def test_timeouts_follow_the_per_request_timeout() -> None:
    router = EnvoyRouter(admin="http://127.0.0.1:9901", runtime_key_prefix="r", timeout="2s")
    assert router.shift_timeout == timedelta(seconds=10)
    assert router.read_timeout == timedelta(seconds=6)


def test_haproxy_placeholders_are_refused_in_an_envoy_plan() -> None:
    data = plan_with({"admin": "http://127.0.0.1:9901", "runtime_key_prefix": "routing.app"})
    data["gates"].append({"name": "haproxy-errors", "preset": "haproxy-error-rate", "max": 0.1})
    with pytest.raises(PlanError) as error:
        parse_plan(data)
    assert "$backend" in str(error.value), str(error.value)
