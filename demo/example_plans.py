"""The demo's plans (canary, Envoy, blue-green, flagd) and its flag file, for both stacks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from demo.configs import (
    BACKEND,
    CANARY_SERVER,
    ENVOY_RUNTIME_PREFIX,
    FLAG,
    HEADER,
    SERVICE,
    STABLE_SERVER,
)


def demo_plan(
    runtime_api: str,
    prometheus_url: str,
    tasks_url: str | None = None,
    match_map: str | None = None,
) -> dict[str, Any]:
    """A rollout plan for the demo service: three stages gated on errors and latency.

    While the stable still has traffic the canary is compared with it (relative gates:
    HAProxy's error rate, the demo's p95 latency); at 100% there is no stable to compare
    with, so the last stage uses fixed thresholds. A statistical error-rate gate runs in
    dry-run beside them: it is judged and recorded, and never acts. With ``tasks_url`` (the
    load generator's task outcomes) a web gate compares the versions' task success rates.
    """
    router = {"kind": "haproxy", "runtime_api": runtime_api, "backend": BACKEND}
    if match_map is not None:
        router["match_map"] = match_map
    return _with_tasks(_plan(router, "haproxy-error-rate", prometheus_url), tasks_url)


def envoy_demo_plan(
    admin: str, prometheus_url: str, tasks_url: str | None = None
) -> dict[str, Any]:
    """The demo plan with Envoy as its router; error gates read the demo service's counters.

    HAProxy's per-server counters do not exist behind Envoy, so the error-rate gates use the
    demo service's own (``demo-error-rate``), labelled by version like its latency.
    """
    router = {"kind": "envoy", "admin": admin, "runtime_key_prefix": ENVOY_RUNTIME_PREFIX}
    return _with_tasks(_plan(router, "demo-error-rate", prometheus_url), tasks_url)


def _with_tasks(plan: dict[str, Any], tasks_url: str | None) -> dict[str, Any]:
    if tasks_url is None:
        return plan
    plan["gates"].insert(2, {**TASK_SUCCESS, **_WINDOW})
    # Named sources come right after the default one, as a person would write them.
    items = list(plan.items())
    after = [key for key, _ in items].index("metrics") + 1
    tasks = {"tasks": {"kind": "web", "url": tasks_url + TASKS_QUERY}}
    return dict([*items[:after], ("sources", tasks), *items[after:]])


# The app's own view of its tasks: the canary's success rate may trail the stable's by at
# most 5 points, over the same window as the Prometheus gates.
TASKS_QUERY = "?version=$target&window=$window"
TASK_SUCCESS: dict[str, Any] = {
    "name": "task-success",
    "source": "tasks",
    "kind": "relative",
    "direction": "decrease",
    "query": "$.success_rate",
    "samples_query": "$.tasks",
    "margin": 0.05,
    "unit": "ratio",
}


_WINDOW: dict[str, Any] = {"window": "30s", "min_samples": 50, "failure_limit": 2}


def _plan(router: dict[str, Any], errors: str, prometheus_url: str) -> dict[str, Any]:
    window = _WINDOW
    return {
        "service": SERVICE,
        "version": "canary",
        "stable": STABLE_SERVER,
        "canary": CANARY_SERVER,
        "router": router,
        "metrics": {"kind": "prometheus", "url": prometheus_url},
        "gates": [
            {"name": "error-rate", "preset": errors, "kind": "relative", **window},
            {"name": "p95-latency", "preset": "demo-p95-latency", "kind": "relative", **window},
            {
                "name": "error-rate-test",
                "preset": errors,
                "kind": "statistical",
                "dry_run": True,
                **window,
            },
            {"name": "error-rate-max", "preset": errors, "max": 0.05, **window},
            {"name": "p95-latency-max", "preset": "demo-p95-latency", "max": 0.25, **window},
        ],
        "stages": [
            {"name": "canary-10", "weight": 10, "bake": "1m", "check_every": "10s"},
            {"name": "canary-50", "weight": 50, "bake": "1m", "check_every": "10s"},
            {
                "name": "promote",
                "weight": 100,
                "bake": "30s",
                "check_every": "10s",
                "gates": ["error-rate-max", "p95-latency-max"],
            },
        ],
    }


def blue_green_plan(
    runtime_api: str, prometheus_url: str, preview_url: str | None = None
) -> dict[str, Any]:
    """The demo as blue-green: 40s of preview on the preview route, one flip, 40s of judging.

    Before the flip the canary (green) gets only the preview route's requests; the error
    rate is compared with the stable's live traffic and held to fixed limits. After it,
    fixed limits alone judge green, and blue stays ready for 30s more.
    """
    router = {"kind": "haproxy", "runtime_api": runtime_api, "backend": BACKEND}
    plan = _plan(router, "haproxy-error-rate", prometheus_url)
    del plan["stages"]
    plan["gates"] = [g for g in plan["gates"] if g["name"] != "error-rate-test"]
    plan["strategy"] = "blue_green"
    section: dict[str, Any] = {
        "preview": "40s",
        "auto_promote_after": "40s",
        "post_promotion_for": "40s",
        "keep_previous_for": "30s",
        "check_every": "10s",
        "pre_promotion": ["error-rate", "error-rate-max", "p95-latency-max"],
        "post_promotion": ["error-rate-max", "p95-latency-max"],
    }
    if preview_url is not None:
        section["preview_url"] = preview_url
    plan["blue_green"] = section
    return plan


def flagd_demo_plan(
    flag_file: str, prometheus_url: str, tasks_url: str | None = None
) -> dict[str, Any]:
    """The demo plan on a feature flag: the demo service's flag in ``flag_file`` is the router.

    The service evaluates the flag per request and labels its metrics with the variant it
    served, so the gates compare variants through the demo's own counters and histogram
    (HAProxy's per-server counters see both variants on each server).
    """
    plan = demo_plan("tcp://127.0.0.1:1", prometheus_url, tasks_url)
    plan["router"] = {"kind": "flagd", "file": flag_file, "flag": FLAG}
    for gate in plan["gates"]:
        if gate.get("preset") == "haproxy-error-rate":
            gate["preset"] = "demo-error-rate"
    return plan


def flag_definition(flag: str = FLAG, extra: Sequence[str] = ()) -> dict[str, Any]:
    """A flag file with one flag: two variants, everyone on the stable until a rollout moves it.

    The targeting is the rollout's shape from the start (canary first, weights out of 100),
    so the first shift only changes numbers. ``extra`` names more variants (an experiment's),
    none of whose users get them until the experiment sets its shares.
    """
    variants = {name: name for name in (STABLE_SERVER, CANARY_SERVER, *extra)}
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            flag: {
                "state": "ENABLED",
                "variants": variants,
                "defaultVariant": STABLE_SERVER,
                "targeting": {"fractional": [[CANARY_SERVER, 0], [STABLE_SERVER, 100]]},
            }
        },
    }


def flag_json(document: Mapping[str, Any]) -> str:
    """A flag file's text (JSON cannot hold the generated-file header as a comment)."""
    return json.dumps(document, indent=2) + "\n"


def plan_yaml(plan: Mapping[str, Any]) -> str:
    """A plan as YAML text, in the order a person writes it."""
    return HEADER + yaml.safe_dump(dict(plan), sort_keys=False, width=200)
