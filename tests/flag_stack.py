"""The dev stack with ``--router flagd``: its plans, its flag file, and what its users get.

Not product code: the product's own plan is ``demo.example_plans.flagd_demo_plan``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

import devstack
from activities.routers import FlagdFile
from plans import FlagdRouter, Plan, TrafficSplit, parse_plan
from tests.stack.conftest import real_stack

USERS = 1000  # the population /split evaluates: the load generator's user-0 ... user-999


@contextmanager
def flag_stack(directory: Path) -> Iterator[devstack.StackInfo]:
    """A whole dev stack whose demo services evaluate the flag file, stopped at the end."""
    with real_stack(directory, router="flagd") as info:
        yield info


def flag_plan(stack: devstack.StackInfo, stages: list[dict[str, Any]], **gate: Any) -> Plan:
    """A plan moving the stack's flag, gated on the canary variant's 5xx share (5 s window)."""
    error_rate = {
        "name": "error-rate",
        "preset": "demo-error-rate",
        "max": 0.05,
        "window": "5s",
        # 40 requests a second, a few of them the canary's at a low stage: the preset's 100
        # would keep a 5 s window inconclusive.
        "min_samples": 5,
        "failure_limit": 2,
        # Right after a shift a 5 s window may hold no canary request yet.
        "inconclusive_limit": 20,
        **gate,
    }
    return parse_plan(
        {
            "service": f"flag-{uuid.uuid4().hex[:8]}",
            "version": "v2",
            "stable": "stable",
            "canary": "canary",
            "router": {"kind": "flagd", "file": stack.flag_file, "flag": stack.flag_key},
            "metrics": {"kind": "prometheus", "url": stack.prometheus_url, "timeout": "2s"},
            "gates": [error_rate],
            "stages": stages,
        }
    )


def flag_file(stack: devstack.StackInfo) -> FlagdFile:
    assert stack.flag_file is not None and stack.flag_key is not None
    return FlagdFile(FlagdRouter(file=stack.flag_file, flag=stack.flag_key))


def file_percent(stack: devstack.StackInfo) -> float:
    """The canary's share the flag file holds now."""
    return flag_file(stack).get_split("stable", "canary").percent


async def evaluated(stack: devstack.StackInfo) -> list[float]:
    """The canary's share of the users, as each demo service evaluates the flag now."""
    shares = []
    async with httpx.AsyncClient(timeout=10.0) as http:
        for base in (stack.stable_url, stack.canary_url):
            answer = (await http.get(f"{base}split?users={USERS}")).json()
            shares.append(float(answer["canary_percent"]))
    return shares


async def evaluated_near(stack: devstack.StackInfo, percent: int, within: float = 30.0) -> bool:
    """Wait until every demo service gives about ``percent`` of the users the canary."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        shares = await evaluated(stack)
        if all(_near(share, percent) for share in shares):
            return True
        await asyncio.sleep(0.2)
    return False


def _near(share: float, percent: int) -> bool:
    # 1,000 fixed users: their hash buckets are fixed, the share is within a few points.
    if percent in (0, 100):
        return share == percent
    return abs(share - percent) <= 5


async def answers_for_users(
    stack: devstack.StackInfo, users: int = 100, headers: dict[str, str] | None = None
) -> dict[str, int]:
    """Requests through HAProxy, one per user id: how many each version answered."""
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for i in range(users):
            sent = {"X-User-Id": f"user-{i}", **(headers or {})}
            response = await http.get(stack.haproxy_url, headers=sent)
            version = response.headers.get("X-Version", "none")
            counts[version] = counts.get(version, 0) + 1
    return counts


def reset_flag(stack: devstack.StackInfo) -> None:
    """Everyone on the stable, healthy variants and a writable file, whatever a test left."""
    assert stack.flag_file is not None
    os.chmod(stack.flag_file, 0o644)
    devstack.fault(Path(stack.dir), 0.0, 0)
    flag_file(stack).set_split("stable", "canary", TrafficSplit.canary_percent(0))
