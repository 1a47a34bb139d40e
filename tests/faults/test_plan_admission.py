"""A plan naming a variable the worker does not give plans is refused when its rollout starts.

A real worker on the dev stack holds a distinctive value in ``AWS_SECRET_ACCESS_KEY``; the
plan names it as its Prometheus bearer token. The run must end refused before any request:
the router untouched, the metrics address never connected to, the value nowhere.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from client import operations
from plans import RolloutState
from tests.faults.chaos import haproxy, own_worker, quick_plan
from tests.faults.conftest import clean_router, client, launched, stack, stack_dir
from tests.fuzz.test_secrets import exported_history

__all__ = ["clean_router", "client", "launched", "stack", "stack_dir"]

pytestmark = pytest.mark.integration


class Listener:
    """A loopback port that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.socket.close()


async def test_a_bearer_token_variable_the_worker_does_not_allow_refuses_the_start(
    stack: devstack.StackInfo, client: Client, launched: list[str], listener: Listener
) -> None:
    secret = f"aws-S3CRET-{uuid.uuid4().hex}"
    with own_worker(stack, Path(stack.dir) / "logs", {"AWS_SECRET_ACCESS_KEY": secret}) as worker:
        plan = quick_plan(
            stack,
            [{"name": "half", "weight": 50, "bake": "3s", "check_every": "1s"}],
            metrics={
                "kind": "prometheus",
                "url": listener.url,
                "bearer_token_env": "AWS_SECRET_ACCESS_KEY",
            },
        )
        handle = await operations.start_rollout(client, plan, worker.task_queue)
        launched.append(plan.workflow_id)
        # What `rollout start` does: it waits for the claim and says why it was refused.
        with pytest.raises(operations.TargetOwned) as caught:
            await operations.await_target(client, plan, handle, timeout=60)
        said = str(caught.value)
        assert said.startswith(
            f"{plan.service} not started: this worker does not run the plan as written:"
            " metrics.bearer_token_env names the environment variable AWS_SECRET_ACCESS_KEY,"
            " which this worker does not give plans (ROLLOUT_PLAN_SECRETS is unset"
        )
        assert "ROLLOUT_PLAN_SECRETS=ROLLOUT_*,AWS_SECRET_ACCESS_KEY" in said
        status = await operations.status(client, plan.service)
        assert status.state == RolloutState.REFUSED
        assert "AWS_SECRET_ACCESS_KEY" in status.reason
        history = await exported_history(stack, plan.workflow_id)
    split = await asyncio.to_thread(haproxy(stack).get_split, plan.stable, plan.canary)
    assert split.canary_weight == 0  # the router was never asked to move
    assert listener.connections == 0  # no query was sent, with or without the token
    assert secret not in history
    assert secret not in worker.log.read_text(errors="replace")
