"""Notifications end to end: a real worker, the Temporal dev server, HAProxy and Prometheus,
an apprise JSON channel on a local HTTP receiver and an email channel on a local SMTP server.

The URLs (with a distinctive secret in each) live only in the worker's environment: they
must reach neither the history nor the worker's log, while the messages arrive in order.
"""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from temporalio.client import Client

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.activities.conftest import free_port
from tests.faults.chaos import Webhook, own_worker, quick_plan
from tests.faults.conftest import clean_router, client, launched, stack, stack_dir
from tests.fuzz.test_secrets import exported_history

__all__ = ["clean_router", "client", "launched", "stack", "stack_dir"]

pytestmark = pytest.mark.integration


class Mailbox:
    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.bodies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.subjects.append(str(mail["Subject"]))
        plain = mail.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
        self.bodies.append(plain.get_content() if plain is not None else "")
        return "250 OK"


async def test_channels_hear_their_events_and_no_url_leaks(
    stack: devstack.StackInfo, client: Client, launched: list[str], tmp_path: Path
) -> None:
    secret = f"S3CRET-{uuid.uuid4().hex}"
    box = Mailbox()
    smtp_port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    webhook = Webhook()
    try:
        with webhook.serving():
            env = {
                "IT_TEAM_URL": f"json://127.0.0.1:{webhook.port}/hooks/{secret}",
                "IT_MAIL_URL": (
                    f"mailto://127.0.0.1:{smtp_port}"
                    f"?from=rollouts@example.com&to=oncall-{secret}@example.com"
                ),
                "ROLLOUT_NOTIFY_DIR": str(tmp_path / "sent"),
                "ROLLOUT_PLAN_SECRETS": "IT_*",  # the worker gives plans these variables
                "TEMPORAL_UI_URL": stack.ui_url,
            }
            with own_worker(stack, Path(stack.dir) / "logs", env) as worker:
                plan = quick_plan(
                    stack,
                    [
                        {"name": "half", "weight": 50, "bake": "3s", "check_every": "1s"},
                        {"name": "all", "weight": 100, "bake": "3s", "check_every": "1s"},
                    ],
                    notify={
                        "channels": [
                            {"name": "team", "url_env": "IT_TEAM_URL"},
                            {"name": "mail", "url_env": "IT_MAIL_URL", "events": ["promoted"]},
                        ]
                    },
                )
                handle = await operations.start_rollout(client, plan, worker.task_queue)
                launched.append(plan.workflow_id)
                result = await asyncio.wait_for(handle.result(), timeout=90)
                assert isinstance(result, RolloutResult)
                assert result.state == RolloutState.PROMOTED
                history = await exported_history(stack, plan.workflow_id)
            log = worker.log.read_text(errors="replace")
    finally:
        smtp.stop()
    titles = [body["title"] for body in webhook.received]
    assert titles == [
        f"🚀 Rollout of {plan.service} v2 started",
        f"✅ {plan.service} v2: stage 1/2 half (50%) passed",
        f"✅ {plan.service} v2: stage 2/2 all (100%) passed",
        f"🎉 {plan.service} v2 promoted: 100% of traffic",
    ]
    assert (
        f"{stack.ui_url}/namespaces/{stack.namespace}/workflows/{plan.workflow_id}"
        in (webhook.received[-1]["message"])
    )
    assert "error-rate" in webhook.received[1]["message"]  # the stage's table of gates
    assert box.subjects == [f"🎉 {plan.service} v2 promoted: 100% of traffic"]
    assert "all stages passed" in box.bodies[0]
    assert "IT_TEAM_URL" in history and "IT_MAIL_URL" in history
    assert secret not in history
    assert secret not in log
