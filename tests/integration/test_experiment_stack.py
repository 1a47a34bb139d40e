"""Experiments on the real stack: a third demo variant behind HAProxy, shares that move traffic.

The end-to-end test runs ExperimentWorkflow on the stack's Temporal dev server and worker,
judging the demo services' own metrics in Prometheus under the load generator's traffic;
it ends within seconds (checks every 2 s, the control failing a fifth of its requests).
Its channel is an apprise JSON URL on a local receiver, in the stack worker's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client.api import Rollouts
from client.experiments import experiment_status, start_experiment
from plans import HAProxyRouter
from plans.experiment import ExperimentPlan, parse_experiment_plan
from plans.runtime.experiment import ExperimentResult, ExperimentState
from plans.runtime.shares import VariantShares
from tests.faults.chaos import Webhook
from tests.integration.conftest import who_answers
from tests.integration.test_status import rollout
from tests.json_schemas import check
from tests.stack.conftest import real_stack

# An experiment is waited for up to 180 s (a loaded machine), the stack started first.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VARIANTS = ["stable", "canary", "canary-b"]
CHAT_ENV = "ROLLOUT_EXPERIMENT_CHAT_URL"  # the worker gives plans ROLLOUT_* variables


@pytest.fixture(scope="module")
def chat() -> Iterator[Webhook]:
    """The channel's receiver, serving while the stack's worker runs."""
    with Webhook().serving() as hook:
        yield hook


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, chat: Webhook) -> Iterator[devstack.StackInfo]:
    """The dev stack with a third demo variant, canary-b, a server of the same backend; its
    worker has the chat channel's URL."""
    directory = tmp_path_factory.mktemp("experiment")
    before = os.environ.get(CHAT_ENV)
    os.environ[CHAT_ENV] = f"json://127.0.0.1:{chat.port}/experiments"
    try:
        with real_stack(directory, variants=["canary-b"]) as info:
            yield info
    finally:
        if before is None:
            os.environ.pop(CHAT_ENV, None)
        else:
            os.environ[CHAT_ENV] = before


@pytest.fixture
def router(stack: devstack.StackInfo) -> Iterator[HAProxyRuntime]:
    """HAProxy's runtime API; after each test every variant healthy and all on the stable."""
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=f"unix://{stack.haproxy_socket}", backend=stack.haproxy_backend)
    )
    yield runtime
    for version in VARIANTS:
        devstack.fault(Path(stack.dir), 0.0, 0, version=version)
    runtime.set_shares(VariantShares(shares={"stable": 100, "canary": 0, "canary-b": 0}))


async def prometheus_result(stack: devstack.StackInfo, query: str) -> list[dict[str, Any]]:
    """The series an instant query gives, each with its labels (``metric``) and value."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = (
            await http.get(f"{stack.prometheus_url}/api/v1/query", params={"query": query})
        ).json()
    found: list[dict[str, Any]] = answer["data"]["result"]
    return found


async def prometheus_value(stack: devstack.StackInfo, query: str) -> float | None:
    found = await prometheus_result(stack, query)
    return float(found[0]["value"][1]) if found else None


async def prometheus_wait(
    stack: devstack.StackInfo, query: str, seconds: float = 30.0
) -> float | None:
    """The query's value once it is above zero, asked every second for up to ``seconds``;
    the last value seen otherwise."""
    deadline = time.monotonic() + seconds
    value = await prometheus_value(stack, query)
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(1)
        value = await prometheus_value(stack, query)
    return value


async def scrape_health(stack: devstack.StackInfo) -> list[tuple[str, str, str]]:
    """Each demo target Prometheus scrapes: its address, health and last error."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = (await http.get(f"{stack.prometheus_url}/api/v1/targets")).json()
    return [
        (each["scrapeUrl"], each["health"], each["lastError"])
        for each in answer["data"]["activeTargets"]
        if each["labels"].get("job") == "demo"
    ]


async def test_shares_move_traffic_over_three_variants(
    stack: devstack.StackInfo, router: HAProxyRuntime
) -> None:
    assert stack.variants == ["canary-b"]
    shares = VariantShares(shares={"stable": 50, "canary": 30, "canary-b": 20})
    assert await asyncio.to_thread(router.set_shares, shares) == shares
    counts = await who_answers(stack, requests=100)
    # Weighted round robin, with the load generator's requests in between: near the shares.
    assert set(counts) == set(VARIANTS), counts
    assert 30 <= counts["stable"] <= 70 and 10 <= counts["canary"] <= 50, counts
    assert 5 <= counts["canary-b"] <= 40, counts
    out = VariantShares(shares={"stable": 60, "canary": 40, "canary-b": 0})
    assert await asyncio.to_thread(router.set_shares, out) == out
    assert "canary-b" not in await who_answers(stack, requests=30)


async def test_the_third_variant_is_faulted_and_scraped_on_its_own(
    stack: devstack.StackInfo, router: HAProxyRuntime
) -> None:
    shares = VariantShares(shares={"stable": 40, "canary": 30, "canary-b": 30})
    await asyncio.to_thread(router.set_shares, shares)
    fault = await asyncio.to_thread(devstack.fault, Path(stack.dir), 1.0, 0, version="canary-b")
    assert fault == {"error_rate": 1.0, "latency_ms": 0}
    with pytest.raises(devstack.StackError, match="no version 'canary-c'"):
        devstack.fault(Path(stack.dir), 1.0, 0, version="canary-c")
    # Prometheus scrapes canary-b's demo service: its 500s show under its own label, and
    # under no other version's (the others' series may miss a scrape on a loaded machine:
    # a version with no 500s, or no series at that instant, is not among them).
    seen = await prometheus_wait(stack, 'sum(demo_requests_total{version="canary-b",code="500"})')
    assert seen, await scrape_health(stack)
    by_version = 'sum by (version) (demo_requests_total{code="500"}) > 0'
    failing = {each["metric"]["version"] for each in await prometheus_result(stack, by_version)}
    assert failing == {"canary-b"}, await scrape_health(stack)


def experiment_plan(
    stack: devstack.StackInfo, told: bool = False, router: dict[str, Any] | None = None
) -> ExperimentPlan:
    """Three demo variants on the stack's HAProxy (or ``router``): fewer errors wins, a slow
    one goes out. ``told``: the chat channel hears every event."""
    notify = {"notify": {"channels": [{"name": "chat", "url_env": CHAT_ENV}]}} if told else {}
    haproxy = {
        "kind": "haproxy",
        "runtime_api": stack.haproxy_admin_tcp,
        "backend": stack.haproxy_backend,
    }
    return parse_experiment_plan(
        notify
        | {
            "service": f"exp-{uuid.uuid4().hex[:6]}",
            "version": "v2",
            "router": router or haproxy,
            "metrics": {"kind": "prometheus", "url": stack.prometheus_url, "timeout": "2s"},
            "gates": [
                # The primary: the demo service's 5xx share, judged on everything since the
                # experiment began, each variant against the control.
                {
                    "name": "errors",
                    "preset": "demo-error-rate",
                    "kind": "sequential",
                    "step": "5s",
                    "window": "10s",
                    "min_samples": 20,
                },
                # The guardrail: p95 answer time above 150 ms takes a variant out.
                {
                    "name": "latency",
                    "preset": "demo-p95-latency",
                    "max": 0.15,
                    "window": "10s",
                    "min_samples": 10,
                    "failure_limit": 1,
                    "inconclusive_limit": 100,
                },
            ],
            "experiment": {
                "control": "stable",
                "variants": [
                    {"name": "stable", "share": 34},
                    {"name": "canary", "share": 33},
                    {"name": "canary-b", "share": 33},
                ],
                "primary": "errors",
                "guardrails": ["latency"],
                "check_every": "2s",
                "max_duration": "3m",
            },
        }
    )


async def faulted_run(
    stack: devstack.StackInfo, client: Client, plan: ExperimentPlan
) -> ExperimentResult:
    """``plan`` run to its end while the control fails a fifth of its requests, canary fails
    none (better on the primary) and canary-b fails as the control does and answers 300 ms
    late (its guardrail fails); cancelled should the wait end otherwise."""
    directory = Path(stack.dir)
    await asyncio.to_thread(devstack.fault, directory, 0.2, 0, version="stable")
    await asyncio.to_thread(devstack.fault, directory, 0.2, 300, version="canary-b")
    handle = await start_experiment(client, plan, stack.task_queue)
    try:
        return await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        with contextlib.suppress(Exception):
            await handle.cancel()


async def test_an_experiment_takes_the_slow_variant_out_and_rolls_the_better_forward(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, chat: Webhook, tmp_path: Path
) -> None:
    plan = experiment_plan(stack, told=True)
    result = await faulted_run(stack, client, plan)
    status = await experiment_status(client, plan.service)
    events = [(e.kind, e.text) for e in status.events]
    assert result.state == ExperimentState.ROLLED_FORWARD, (result, events)
    assert result.winner == "canary", (result, events)
    assert result.shares == {"stable": 0, "canary": 100, "canary-b": 0}
    assert "canary shown better than stable" in result.reason
    # canary-b was taken out by its guardrail, before the winner was rolled forward.
    out = [i for i, (kind, text) in enumerate(events) if kind == "out"]
    end = [i for i, (kind, _) in enumerate(events) if kind == "end"]
    assert out and end and out[0] < end[0], events
    assert "canary-b taken out" in events[out[0]][1] and "latency" in events[out[0]][1]
    variants = {v.name: v for v in status.variants}
    assert variants["canary-b"].out and not variants["canary"].out
    assert variants["canary"].primary is not None and variants["canary"].better
    # The router routes what the experiment says: everything to the winner.
    shares = await asyncio.to_thread(router.get_shares, VARIANTS)
    assert shares.shares == {"stable": 0, "canary": 100, "canary-b": 0}
    assert set(await who_answers(stack, requests=20)) == {"canary"}
    # The chat channel heard the start, canary-b taken out, and the winner, in that order.
    titles = [body["title"] for body in chat.received if plan.service in body["title"]]
    assert titles == [
        f"🧪 Experiment on {plan.service} started",
        f"⚠️ Experiment on {plan.service}: canary-b taken out",
        f"🎉 Experiment on {plan.service}: canary rolled forward to 100% of traffic",
    ]
    winner = chat.received[-1]["message"]
    assert "canary: 100%, errors x" in winner and "better" in winner
    assert "canary-b: 0% (taken out: guardrail latency" in winner
    # `rollout report` writes the report again from the history: the plot of the effects too.
    code, out, err, _ = await rollout(
        stack, "report", plan.service, "--out", str(tmp_path), "--json"
    )
    assert code == 0, err
    written = check("report", out)
    assert written["state"] == "rolled_forward" and set(written["files"]) == {"md", "json", "png"}
    text = Path(written["files"]["md"]).read_text()
    assert "Winner: **canary**" in text and "(experiment-effect.png)" in text
    assert Path(written["files"]["png"]).read_bytes().startswith(b"\x89PNG")


async def shares_become(
    router: HAProxyRuntime, wanted: dict[str, int], within_s: float
) -> VariantShares:
    """HAProxy's shares, read until they are ``wanted`` or ``within_s`` has passed."""
    deadline = time.monotonic() + within_s
    shares = await asyncio.to_thread(router.get_shares, VARIANTS)
    while shares.shares != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        shares = await asyncio.to_thread(router.get_shares, VARIANTS)
    return shares


RUNNING = {"stable": 34, "canary": 33, "canary-b": 33}
CONTROL = {"stable": 100, "canary": 0, "canary-b": 0}


async def test_a_rollback_mid_experiment_puts_haproxy_back_on_the_control(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    # Every variant healthy: no winner comes, the experiment runs until told otherwise.
    plan = experiment_plan(stack)
    handle = await start_experiment(client, plan, stack.task_queue)
    try:
        assert (await shares_become(router, RUNNING, 60)).shares == RUNNING
        record = await Rollouts(client, task_queue=stack.task_queue).rollback(
            plan.service, by="ana", reason="checkout looks odd"
        )
        assert record.accepted
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        with contextlib.suppress(Exception):
            await handle.cancel()
    assert (await asyncio.to_thread(router.get_shares, VARIANTS)).shares == CONTROL
    status = await experiment_status(client, plan.service)
    assert status.state == ExperimentState.ROLLED_BACK
    assert set(await who_answers(stack, requests=20)) == {"stable"}


async def test_a_terminated_experiment_s_lease_puts_haproxy_back_on_the_control(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = experiment_plan(stack)
    handle = await start_experiment(client, plan, stack.task_queue)
    assert (await shares_become(router, RUNNING, 60)).shares == RUNNING
    # Terminate runs no code of the experiment's: its target's lease puts the control back.
    await handle.terminate("removed by an operator")
    assert (await shares_become(router, CONTROL, 90)).shares == CONTROL
    assert set(await who_answers(stack, requests=20)) == {"stable"}
