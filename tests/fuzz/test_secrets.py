"""Secrets named by a plan never reach the workflow's history (exported with the temporal CLI).

The webhook URL and the Prometheus bearer token live in the worker's environment only; the
plan names the variables. A worker of our own is started with distinctive values in them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.faults.chaos import Webhook, own_worker, quick_plan, temporal_cli
from tests.faults.conftest import clean_router, client, launched, stack, stack_dir

__all__ = ["clean_router", "client", "launched", "stack", "stack_dir"]

pytestmark = pytest.mark.integration


async def exported_history(stack: devstack.StackInfo, workflow_id: str) -> str:
    """The history as `temporal workflow show --output json` gives it, payloads decoded too.

    Payloads are base64 in the export: searching only the raw text would miss a secret
    inside one, so every payload's data is appended decoded.
    """
    code, out, error = await temporal_cli(
        stack, "workflow", "show", "--workflow-id", workflow_id, "--output", "json"
    )
    assert code == 0, error
    exported = json.loads(out)
    assert exported["events"]
    decoded = [base64.b64decode(data).decode("utf-8", "replace") for data in _payloads(exported)]
    assert decoded, "no payload found in the export"
    return "\n".join([out, *decoded])


def _payloads(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and "metadata" in node:
            yield node["data"]
        for value in node.values():
            yield from _payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payloads(value)


async def run_with_secrets(
    stack: devstack.StackInfo, client: Client, launched: list[str], webhook: Webhook
) -> tuple[str, list[str], Path]:
    """A promoted rollout whose worker holds the secrets; (exported history, secrets, log)."""
    hook_secret = f"hook-S3CRET-{uuid.uuid4().hex}"
    token_secret = f"prom-T0KEN-{uuid.uuid4().hex}"
    env = {
        "FUZZ_WEBHOOK_URL": webhook.url(f"/services/{hook_secret}"),
        "FUZZ_PROMETHEUS_TOKEN": token_secret,
        "ROLLOUT_PLAN_SECRETS": "FUZZ_WEBHOOK_URL,FUZZ_PROMETHEUS_TOKEN",
    }
    with own_worker(stack, Path(stack.dir) / "logs", env) as worker:
        plan = quick_plan(
            stack,
            [
                {"name": "half", "weight": 50, "bake": "3s", "check_every": "1s"},
                {"name": "all", "weight": 100, "bake": "3s", "check_every": "1s"},
            ],
            notify={"webhook_url_env": "FUZZ_WEBHOOK_URL"},
            metrics={
                "kind": "prometheus",
                "url": stack.prometheus_url,
                "bearer_token_env": "FUZZ_PROMETHEUS_TOKEN",
            },
        )
        handle = await operations.start_rollout(client, plan, worker.task_queue)
        launched.append(plan.workflow_id)
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
        status = await operations.status(client, plan.service)
        history = await exported_history(stack, plan.workflow_id)
        history += status.model_dump_json()
    # The token was really used: the gate read data through Prometheus with it.
    assert status.verdicts["error-rate"].outcome.value == "pass"
    assert f"/services/{hook_secret}" in webhook.paths
    return history, [hook_secret, token_secret, env["FUZZ_WEBHOOK_URL"]], worker.log


async def test_webhook_url_and_bearer_token_stay_out_of_history_and_logs(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    webhook = Webhook()
    with webhook.serving():
        history, secrets, log = await run_with_secrets(stack, client, launched, webhook)
    assert any("promoted" in text for text in webhook.texts())
    # The plan names the variables, so they may appear; their values never do.
    assert "FUZZ_WEBHOOK_URL" in history and "FUZZ_PROMETHEUS_TOKEN" in history
    for secret in secrets:
        assert secret not in history
    worker_log = log.read_text(errors="replace")
    for secret in secrets:
        assert secret not in worker_log


async def test_a_webhook_error_page_quoting_the_url_stays_out_of_history(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    webhook = Webhook(status=404, answer=lambda path: f"no such hook: {path}")
    with webhook.serving():
        history, secrets, _ = await run_with_secrets(stack, client, launched, webhook)
    for secret in secrets[:1]:
        assert secret not in history
