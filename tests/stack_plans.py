"""Plans for the real dev stack, shared by the tests, the benchmarks and the scripts.

Not product code: the product's own demo plan is ``demo.example_plans.demo_plan``.
"""

from __future__ import annotations

from typing import Any

from devstack.info import StackInfo


def stack_plan(
    info: StackInfo,
    service: str,
    gates: list[dict[str, Any]],
    stages: list[dict[str, Any]],
    *,
    version: str = "v2",
) -> dict[str, Any]:
    """Plan data for this stack: its two servers behind its HAProxy, its Prometheus."""
    return {
        "service": service,
        "version": version,
        "stable": "stable",
        "canary": "canary",
        "router": {
            "kind": "haproxy",
            "runtime_api": info.haproxy_admin_tcp,
            "backend": info.haproxy_backend,
        },
        "metrics": {"kind": "prometheus", "url": info.prometheus_url},
        "gates": gates,
        "stages": stages,
    }


def error_rate_plan(
    info: StackInfo,
    service: str,
    stages: list[dict[str, Any]],
    *,
    window: str,
    **gate: Any,
) -> dict[str, Any]:
    """Plan data for this stack with one gate on the canary's 5xx share.

    ``window`` is the rate window; ``gate`` adds or overrides the gate's fields.
    """
    responses = (
        f'haproxy_server_http_responses_total{{proxy="{info.haproxy_backend}",server="$canary"'
    )
    error_rate = {
        "name": "error-rate",
        "query": f'sum(rate({responses},code="5xx"}}[{window}]))'
        f" / sum(rate({responses}}}[{window}]))",
        "max": 0.05,
        **gate,
    }
    return stack_plan(info, service, [error_rate], stages)
