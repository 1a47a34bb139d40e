"""A newcomer's first signed approval on the dev stack: `rollout dev up` trusts their key."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from client.signing import user_name
from devstack.trust import ALLOWED_SIGNERS
from plans import RolloutState, parse_plan
from tests.stack_plans import error_rate_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def rollout(stack: devstack.StackInfo, *args: str) -> tuple[int, str]:
    """Run the `rollout` CLI as a newcomer would: no key named, no ssh-agent, the stack's key."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": stack.namespace,
        "ROLLOUT_DIR": stack.dir,
        "COLUMNS": "200",
    }
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("ROLLOUT_SIGNING_KEY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_the_first_signed_approval_works_on_the_dev_stack(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, tmp_path: Path
) -> None:
    assert (Path(stack.dir) / ALLOWED_SIGNERS).read_text().startswith(f"{user_name()} ")
    stages = [
        {"name": "canary", "weight": 10, "bake": "6s", "check_every": "1s", "approval": True},
        {"name": "full", "weight": 100, "bake": "6s", "check_every": "1s"},
    ]
    data = error_rate_plan(stack, f"first-{uuid.uuid4().hex[:6]}", stages, window="5s")
    data["gates"][0]["inconclusive_limit"] = 10  # the first looks may see no canary requests
    data["approvers"] = [user_name()]
    plan = parse_plan(data)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    code, said = await rollout(stack, "start", str(path))
    assert code == 0, said
    for _ in range(240):
        status = await operations.status(client, plan.service)
        if status.state == RolloutState.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.25)
    assert status.state == RolloutState.AWAITING_APPROVAL
    # What the Temporal UI sends: a name typed in, refused and recorded so.
    handle = client.get_workflow_handle(plan.workflow_id)
    await handle.signal("approve", {"by": "cab"})
    code, said = await rollout(stack, "approve", plan.service, "--reason", "looks good")
    assert code == 0, said
    assert f"approve taken for {plan.service} (by verified {user_name()} (SHA256:" in said
    assert router.get_split("stable", "canary").canary_weight >= 10
    result = await handle.result()
    assert result["state"] == RolloutState.PROMOTED
    code, said = await rollout(stack, "status", plan.service)
    assert f"verified {user_name()} (SHA256:" in said and "claimed cab" in said, said
