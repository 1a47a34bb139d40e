"""A gate hook on the real stack: a local approval service holds a stage until it says yes."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.client import Client

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import RolloutState
from plans.hooks import SIGNATURE_HEADER, verify_signature
from tests.integration.conftest import fast_plan

pytestmark = pytest.mark.integration

SECRET_VAR = "ROLLOUT_IT_HOOK_SECRET"
SECRET = "it-hook-signing-secret-4f1c"


@pytest.fixture(scope="module", autouse=True)
def signing_secret() -> Iterator[None]:
    """In the environment before the stack's worker starts (autouse: set up first)."""
    os.environ[SECRET_VAR] = SECRET
    yield
    os.environ.pop(SECRET_VAR, None)


@dataclass
class Approvals:
    """A change-approval service: 202 with retry_after until approved, then 200."""

    url: str = ""
    approved: threading.Event = field(default_factory=threading.Event)
    asks: list[dict[str, Any]] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)


@pytest.fixture
def approvals() -> Iterator[Approvals]:
    state = Approvals()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.signed.append(
                verify_signature(body, self.headers, SECRET)  # the webhook-* headers
                and verify_signature(body, self.headers[SIGNATURE_HEADER], SECRET)  # deprecated
            )
            state.asks.append(json.loads(body))
            if state.approved.is_set():
                status, answer = 200, b'{"approved": true}'
            else:
                status, answer = 202, b'{"retry_after": 1}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_a_gate_hook_holds_the_stage_until_it_says_yes(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, approvals: Approvals
) -> None:
    gate = {
        "name": "change-approval",
        "on": "before_stage",
        "url": approvals.url + "/changes/$service",
        "secret_env": SECRET_VAR,
        "timeout": "5s",
    }
    plan = fast_plan(
        stack, [{"name": "twenty", "weight": 20, "bake": "6s", "check_every": "2s"}], hooks=[gate]
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    for _ in range(600):  # until it has been told "later" twice, at most a minute
        if len(approvals.asks) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(approvals.asks) >= 2, "the gate hook was not asked again after its 202"
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert split.canary_weight == 0  # held: no traffic before the gate said yes
    status = await operations.status(client, plan.service)
    assert any("answered 202" in e.text for e in status.events if e.kind == "hook")

    approvals.approved.set()
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.state == RolloutState.PROMOTED
    assert all(approvals.signed) and approvals.asks[-1]["attempt"] == len(approvals.asks)
    assert {a["idempotency_key"] for a in approvals.asks} == {approvals.asks[0]["idempotency_key"]}
    assert approvals.asks[0]["version"] == 1 and approvals.asks[0]["next_weight"] == 20
    # The history holds every call and answer, and never the secret.
    history = b"".join([e.SerializeToString() async for e in handle.fetch_history_events()])
    assert b"change-approval" in history and b'"retry_after_s":1.0' in history
    assert SECRET.encode() not in history
