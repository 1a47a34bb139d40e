"""docs/examples/rollout-ci.sh, the steps both CI examples run, against the real stack: a
promoted rollout passes the job, a rolled-back one fails it with exit 3, and a cancelled job
stops following while the rollout goes on; connected through a temporal.toml profile and
through TEMPORAL_* variables (empty ones, as CI leaves a missing secret, dropped)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import CommandKind, OperatorCommand, RolloutError, RolloutState
from tests.integration.test_scripting import LONG, QUICK, ended, plan_file

# A whole rollout a test, each bounded by BOUND_S: room for a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "rollout-ci.sh"
BOUND_S = 240.0


def ci_env(stack: devstack.StackInfo, folder: Path, *, profile: bool) -> dict[str, str]:
    """The job's environment: the server by a temporal.toml profile or by TEMPORAL_*."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "ROLLOUT_"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        ROLLOUT_TASK_QUEUE=stack.task_queue,
        ROLLOUT_CI_OUTPUT=str(folder / "outputs"),
        # no dev stack to fall back on: the job knows only what it is given
        ROLLOUT_DIR=str(folder / "no-stack"),
        HOME=str(folder),
    )
    if profile:
        config = folder / "temporal.toml"
        config.write_text(
            f'[profile.ci]\naddress = "{stack.temporal_address}"\nnamespace = "{stack.namespace}"\n'
        )
        env.update(TEMPORAL_CONFIG_FILE=str(config), TEMPORAL_PROFILE="ci")
    else:
        env.update(
            TEMPORAL_ADDRESS=stack.temporal_address,
            TEMPORAL_NAMESPACE=stack.namespace,
            TEMPORAL_API_KEY="",
            TEMPORAL_TLS_CLIENT_CERT_DATA="",
            TEMPORAL_TLS_CLIENT_KEY_DATA="",
        )
    return env


async def launch(plan: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), str(plan),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=plan.parent,
    )  # fmt: skip


async def finished(
    process: asyncio.subprocess.Process, folder: Path
) -> tuple[int, str, dict[str, str]]:
    """The script's exit code, its stderr and the outputs it wrote for later steps."""
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=BOUND_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    lines = (folder / "outputs").read_text().splitlines()
    return (
        process.returncode,
        err.decode(errors="replace"),
        dict(line.split("=", 1) for line in lines),
    )


async def test_a_promoted_rollout_passes_the_job(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    plan = plan_file(stack, tmp_path, QUICK)
    service = plan.stem
    process = await launch(plan, ci_env(stack, tmp_path, profile=True))
    code, err, outputs = await finished(process, tmp_path)
    assert code == 0, err
    assert outputs == {
        "rollout_service": service,
        "rollout_workflow_id": f"rollout-{service}",
        "rollout_outcome": "promoted",
        "rollout_exit_code": "0",
    }
    assert f"rollout-ci: {service}: promoted (exit 0)" in err
    assert (await operations.status(client, service)).state == RolloutState.PROMOTED


async def test_a_rolled_back_rollout_fails_the_job_with_3(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, tmp_path: Path
) -> None:
    await asyncio.to_thread(devstack.fault, Path(stack.dir), 0.5, 0)
    plan = plan_file(stack, tmp_path, LONG)
    service = plan.stem
    process = await launch(plan, ci_env(stack, tmp_path, profile=False))
    code, err, outputs = await finished(process, tmp_path)
    assert code == 3, err
    assert outputs["rollout_outcome"] == "rolled-back"
    assert outputs["rollout_exit_code"] == "3"
    assert outputs["rollout_service"] == service
    assert f"rollout-ci: {service}: rolled-back (exit 3)" in err
    assert (await operations.status(client, service)).state == RolloutState.ROLLED_BACK
    assert router.get_split("stable", "canary").canary_weight == 0


async def test_a_cancelled_job_stops_following_and_the_rollout_goes_on(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    plan = plan_file(stack, tmp_path, LONG)
    service = plan.stem
    process = await launch(plan, ci_env(stack, tmp_path, profile=False))
    try:
        for _ in range(240):
            with contextlib.suppress(RolloutError):  # not started yet
                if (await operations.status(client, service)).state == RolloutState.BAKING:
                    break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"{service} never baked")
        process.send_signal(signal.SIGTERM)  # what a CI runner sends a cancelled job
        code, err, outputs = await finished(process, tmp_path)
        assert code == 130, err
        assert outputs["rollout_outcome"] == "interrupted"
        assert not (await operations.status(client, service)).state.final
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stop = OperatorCommand(kind=CommandKind.ROLLBACK, by="test", reason="the test ended")
        with contextlib.suppress(RolloutError):
            await operations.send_command(client, service, stop)
    assert await ended(client, service) == RolloutState.ROLLED_BACK
