"""The worker in production: its own metrics, and two replicas on one task queue.

One real stack for the module (tests/faults/conftest.py); the stack's worker serves its
metrics on the port stack.json names, and the scale-out test starts two workers of its own.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from benchmarks.scale_out import scale_out
from client import operations
from plans import CommandKind, OperatorCommand
from plans.runtime import metric_names
from tests.faults.chaos import baking, eventually, quick_plan, until

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(address: str) -> list[tuple[str, str, float]]:
    """(name, labels, value) of every sample the endpoint at ``address`` serves."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = []
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found:
            samples.append((found[1], found[2] or "", float(found[3])))
    return samples


def total(samples: list[tuple[str, str, float]], name: str, service: str, *labels: str) -> float:
    """The sum of ``name``'s samples for ``service`` whose labels include each of ``labels``."""
    return sum(
        value
        for n, found, value in samples
        if n == name and f'service="{service}"' in found and all(lb in found for lb in labels)
    )


async def test_the_worker_serves_its_rollout_metrics_and_prometheus_scrapes_them(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    assert stack.worker_metrics is not None
    plan = quick_plan(stack, [{"name": "a", "weight": 20, "bake": "2m", "check_every": "1s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, lambda s: baking(0)(s) and s.checks >= 2, what="2 checks")
    await operations.send_command(
        client, plan.service, OperatorCommand(kind=CommandKind.ROLLBACK, by="ana", reason="test")
    )
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)

    samples = await asyncio.to_thread(scrape, stack.worker_metrics)
    service = plan.service
    assert total(samples, metric_names.STARTED, service, 'strategy="canary"') == 1
    assert total(samples, metric_names.ENDED, service, 'outcome="rolled_back"') == 1
    assert total(samples, metric_names.ROLLBACKS, service) == 1
    assert total(samples, metric_names.COMMANDS, service, 'kind="rollback"', 'fate="accepted"') == 1
    assert total(samples, metric_names.CHECKS, service, 'state="baking"') >= 2
    assert total(samples, metric_names.VERDICTS, service, 'gate="error-rate"') >= 2
    assert total(samples, f"{metric_names.RESTORE_SECONDS}_count", service) == 1
    assert total(samples, metric_names.CANARY_WEIGHT, service) == 0
    # The SDK's labels come along: which workflow type and task queue counted it.
    started = [f for n, f, _ in samples if n == metric_names.STARTED and service in f]
    assert 'workflow_type="RolloutWorkflow"' in started[0]
    assert f'task_queue="{stack.task_queue}"' in started[0]
    shifts = [(f, v) for n, f, v in samples if n == metric_names.SHIFTS]
    assert any('router="haproxy"' in f and 'outcome="done"' in f and v >= 2 for f, v in shifts)
    assert any(n == f"{metric_names.SHIFT_SECONDS}_count" and v >= 2 for n, _, v in samples)

    async def scraped() -> bool:
        url = f"{stack.prometheus_url}/api/v1/query?query=" + urllib.request.quote(
            f'{metric_names.ENDED}{{service="{service}"}}'
        )
        with urllib.request.urlopen(url, timeout=5) as answer:
            return b'"outcome":"rolled_back"' in answer.read()

    await eventually(scraped, 30, "the dev stack's Prometheus to scrape the worker's metrics")


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_workers_on_one_queue_one_killed_mid_bake_every_rollout_goes_on(
    stack: devstack.StackInfo, client: Client
) -> None:
    """Half the rollouts start on worker A alone, half once B polls too; A dies by SIGKILL
    while all bake their second stage. B finishes every rollout: each promoted, each shift
    scheduled once and in order, each stage started and passed once."""
    measured = await scale_out(stack, client, 10, 4.0, 1.0, Path(stack.dir) / "logs")
    assert measured["wrong"] == [], measured
    assert measured["promoted"] == measured["correct"] == 10, measured
    # A held at least the rollouts it ran before B polled; all of them moved to B.
    assert measured["held_by_killed_worker"] >= 5, measured
    assert len(measured["workers_after_kill"]) == 1, measured
