"""Exit codes of real `rollout` and `rollout-worker` processes: only the documented ones.

A short process that made a Temporal client used to die at exit now and then (SIGABRT
or SIGSEGV while the interpreter finalized under the SDK's Rust threads), after its work
was done. Each command runs 100 times here against a real dev stack, four at a time;
every run must end with a documented code and print its whole output.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

import devstack
from client import operations
from devstack.processes import pid_alive
from plans import RolloutState
from tests.integration import conftest as integration
from tests.stack_plans import error_rate_plan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The integration tests' fixtures: a real stack with a worker, and a client of it.
stack = integration.stack
client = integration.client

BIN = Path(sys.executable).parent
ROLLOUT = str(BIN / "rollout")
WORKER = str(BIN / "rollout-worker")
RUNS = 100
AT_ONCE = 4
# Codes the README and `rollout --help` document; none of them can come from a crash.
DOCUMENTED = {0, 1, 2, 3, 4, 5, 130}
CRASH_SIGNS = ("Fatal Python error", "Segmentation fault", "Traceback", "core dumped")


@dataclass
class Run:
    """One finished process: its arguments, exit code and output."""

    argv: Sequence[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        tail = "\n".join((self.out + self.err).splitlines()[-8:])
        return f"{' '.join(self.argv)} -> {self.code}\n{tail}"


def cli_env(info: devstack.StackInfo, folder: Path) -> dict[str, str]:
    """The CLI pointed at this stack, and away from any profile or stack of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env.update(
        TEMPORAL_ADDRESS=info.temporal_address,
        TEMPORAL_NAMESPACE=info.namespace,
        TEMPORAL_CONFIG_FILE=str(folder / "no-profile.toml"),
        ROLLOUT_TASK_QUEUE=info.task_queue,
        ROLLOUT_DIR=info.dir,
        COLUMNS="200",
    )
    return env


async def run(argv: Sequence[str], env: dict[str, str], timeout: float = 120.0) -> Run:
    """Run one process to its end; kill it by pid if it outlives ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def run_many(argvs: Iterable[Sequence[str]], env: dict[str, str]) -> list[Run]:
    """Run every argv, AT_ONCE at a time; report how long the batch took."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(argv: Sequence[str]) -> Run:
        async with gate:
            return await run(argv, env)

    started = time.monotonic()
    runs = await asyncio.gather(*(one(argv) for argv in argvs))
    took = time.monotonic() - started
    name = " ".join([Path(runs[0].argv[0]).name, *runs[0].argv[1:2]])
    print(f"{len(runs)} x {name}: {took:.1f}s, {took / len(runs):.2f}s a run")
    return runs


def undocumented(runs: Iterable[Run]) -> list[Run]:
    """Runs that ended with a code nobody documents, or show signs of a crash."""
    return [
        r
        for r in runs
        if r.code not in DOCUMENTED or any(sign in r.out + r.err for sign in CRASH_SIGNS)
    ]


def check(runs: list[Run], allowed: set[int]) -> None:
    """Every run ended with an allowed, documented code and without a crash."""
    bad = undocumented(runs) + [r for r in runs if r.code not in allowed]
    assert not bad, f"{len(bad)} of {len(runs)} runs went wrong:\n" + "\n\n".join(
        str(r) for r in bad[:5]
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def plan_file(info: devstack.StackInfo, folder: Path, service: str) -> Path:
    """A one-stage plan on the stack: 10% for 10 minutes, so it stays running."""
    data = error_rate_plan(
        info,
        service,
        [{"name": "ten", "weight": 10, "bake": "10m", "check_every": "1m"}],
        window="1m",
        inconclusive_limit=100,
    )
    path = folder / f"{service}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


async def end_rollouts(client: Client, services: Sequence[str]) -> None:
    """Cancel the rollouts of these services that still run, and wait until each has ended."""
    running = []
    for service in services:
        handle = client.get_workflow_handle(f"rollout-{service}")
        try:
            described = await handle.describe()
        except RPCError:
            continue  # never started
        if described.status == WorkflowExecutionStatus.RUNNING:
            await handle.cancel()
            running.append(handle)
    for handle in running:
        for _ in range(600):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)


@pytest.fixture
def env(stack: devstack.StackInfo, tmp_path: Path) -> dict[str, str]:
    return cli_env(stack, tmp_path)


@pytest.fixture
async def running(
    stack: devstack.StackInfo,
    client: Client,
    env: dict[str, str],
    tmp_path: Path,
) -> AsyncIterator[str]:
    """The service of a rollout started with the CLI, still running; ended afterwards."""
    service = f"exits-{uuid.uuid4().hex[:6]}"
    started = await run([ROLLOUT, "start", str(plan_file(stack, tmp_path, service))], env)
    assert started.code == 0, str(started)
    try:
        for _ in range(600):
            if (await operations.status(client, service)).state == RolloutState.BAKING:
                break
            await asyncio.sleep(0.1)
        yield service
    finally:
        await end_rollouts(client, [service])


@pytest.mark.timeout(900)
async def test_start_100_times(
    stack: devstack.StackInfo,
    client: Client,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    # A distinct service each time. Starts after the first may be refused (exit 1) when a
    # running rollout already moves the same HAProxy backend: a documented outcome too.
    services = [f"exits-s{i}-{uuid.uuid4().hex[:4]}" for i in range(RUNS)]
    plans = [plan_file(stack, tmp_path, service) for service in services]
    try:
        runs = await run_many([[ROLLOUT, "start", str(p)] for p in plans], env)
    finally:
        await end_rollouts(client, services)
    check(runs, {0, 1})
    for service, r in zip(services, runs, strict=True):
        if r.code == 0:
            assert f"started rollout-{service} (run " in r.out, str(r)
            assert f"/workflows/rollout-{service}" in flat(r.out), str(r)
        else:
            assert "error:" in r.err, str(r)
    assert any(r.code == 0 for r in runs)


@pytest.mark.timeout(900)
async def test_status_100_times(running: str, env: dict[str, str]) -> None:
    runs = await run_many([[ROLLOUT, "status", running]] * RUNS, env)
    # 5: the worker, busy, did not answer the status query in time; Temporal's records show.
    check(runs, {0, 5})
    for r in runs:
        assert running in r.out, str(r)
        assert f"/workflows/rollout-{running}" in flat(r.out), str(r)


@pytest.mark.timeout(900)
async def test_list_100_times(running: str, env: dict[str, str]) -> None:
    runs = await run_many([[ROLLOUT, "list"]] * RUNS, env)
    check(runs, {0})
    for r in runs:
        assert f"rollout-{running}" in r.out, str(r)


@pytest.mark.timeout(900)
async def test_pause_100_times(running: str, env: dict[str, str]) -> None:
    argv = [ROLLOUT, "pause", running, "--reason", "exit codes", "--by", "test"]
    runs = await run_many([argv] * RUNS, env)
    # The first pause is taken; the others are refused as already paused.
    check(runs, {0, 1})
    assert [r.code for r in runs].count(0) == 1, [r.code for r in runs]
    for r in runs:
        if r.code == 0:
            assert f"pause taken for {running} (by test)" in r.out, str(r)
        else:
            assert "pause: rollout is already paused" in flat(r.err), str(r)


@pytest.mark.timeout(900)
async def test_rollback_100_times(running: str, env: dict[str, str]) -> None:
    argv = [ROLLOUT, "rollback", running, "--reason", "exit codes", "--by", "test"]
    runs = await run_many([argv] * RUNS, env)
    # The first rollback is taken; the others are refused (it is rolling back, or has
    # ended, or ended while Temporal held the command) with the reason.
    check(runs, {0, 1})
    assert [r.code for r in runs].count(0) == 1, [r.code for r in runs]
    for r in runs:
        if r.code == 0:
            assert f"rollback taken for {running} (by test)" in r.out, str(r)
        else:
            assert r.err.startswith("error: "), str(r)


@pytest.mark.timeout(900)
async def test_validate_100_times(
    stack: devstack.StackInfo,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    path = plan_file(stack, tmp_path, "exits-valid")
    runs = await run_many([[ROLLOUT, "validate", str(path)]] * RUNS, env)
    check(runs, {0})
    for r in runs:
        assert "is a valid plan for exits-valid (rollout-exits-valid)" in flat(r.out), str(r)
        # The last line: the output was flushed whole before the process ended.
        assert "1. ten: 10% for 10m, checks every 1m (error-rate)" in r.out, str(r)


@pytest.mark.timeout(900)
async def test_a_failing_command_100_times(env: dict[str, str]) -> None:
    runs = await run_many([[ROLLOUT, "status", f"nosuch-{i}"] for i in range(RUNS)], env)
    check(runs, {1})
    for i, r in enumerate(runs):
        assert f"no rollout of 'nosuch-{i}' found" in flat(r.err), str(r)


async def test_usage_errors_and_help_keep_their_codes(env: dict[str, str]) -> None:
    argvs = [[ROLLOUT], [ROLLOUT, "nosuch"], [ROLLOUT, "pause"], [ROLLOUT, "--help"]] * 5
    runs = await run_many(argvs, env)
    check(runs, {0, 2})
    assert [r.code for r in runs] == [2, 2, 2, 0] * 5
    assert all("exit codes:" in r.out for r in runs if r.code == 0)


async def test_a_worker_asked_for_an_unknown_sandbox_setting_says_so(env: dict[str, str]) -> None:
    (refused,) = await run_many([[WORKER]], {**env, "ROLLOUT_WORKFLOW_SANDBOX": "maybe"})
    assert refused.code == 2, str(refused)
    assert "ROLLOUT_WORKFLOW_SANDBOX must be on or off, not 'maybe'" in refused.err


async def test_a_worker_given_a_sticky_timeout_that_is_not_seconds_says_so(
    env: dict[str, str],
) -> None:
    (refused,) = await run_many([[WORKER]], {**env, "ROLLOUT_STICKY_TIMEOUT": "30s"})
    assert refused.code == 2, str(refused)
    assert "ROLLOUT_STICKY_TIMEOUT must be a number of seconds from 1 to 600, not '30s'" in (
        refused.err
    )


async def worker_until(env: dict[str, str], line: str) -> Run:
    """Start `rollout-worker`, SIGTERM it once its log shows ``line``, and let it end."""
    proc = await asyncio.create_subprocess_exec(
        WORKER,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        while not any(line in s for s in seen):
            text = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert text, "the worker ended before it logged " + repr(line) + "".join(seen)
            seen.append(text)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run([WORKER], proc.returncode, out.decode(), "".join(seen) + err.decode())


@pytest.mark.timeout(600)
async def test_worker_stopped_by_sigterm_exits_0(
    stack: devstack.StackInfo,
    tmp_path: Path,
) -> None:
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(i: int) -> Run:
        env = {**cli_env(stack, tmp_path), "ROLLOUT_TASK_QUEUE": f"exits-{i}"}
        # Half are stopped while polling, half while still starting (before connecting).
        async with gate:
            return await worker_until(env, "worker polling" if i % 2 else "starting")

    runs = await asyncio.gather(*(one(i) for i in range(20)))
    check(runs, {0})
    for r in runs:
        assert "rollout-worker INFO stopped" in r.err, str(r)


@pytest.fixture
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for a stack the CLI starts itself; whatever runs there is stopped afterwards."""
    directory = tmp_path_factory.mktemp("cli-stack").resolve()
    try:
        yield directory
    finally:
        devstack.down(directory)


@pytest.mark.timeout(600)
async def test_dev_up_then_down_exit_0_and_stop_the_worker_cleanly(
    stack: devstack.StackInfo,
    own_stack: Path,
    tmp_path: Path,
) -> None:
    env = cli_env(stack, tmp_path)
    up = await run([ROLLOUT, "dev", "up", "--dir", str(own_stack)], env)
    check([up], {0})
    assert f"rollout dev down --dir {own_stack}" in up.err, str(up)
    assert f"export ROLLOUT_DIR={own_stack}" in up.err, str(up)
    info = devstack.load(own_stack)
    assert "worker" in info.pids

    down = await run([ROLLOUT, "dev", "down", "--dir", str(own_stack)], env)
    check([down], {0})
    assert set(down.out.removeprefix("stopped: ").strip().split(", ")) == set(info.pids)
    assert not any(pid_alive(pid) for pid in info.pids.values())
    # The worker was stopped by SIGTERM: it logged a clean stop, and no crash.
    worker_log = Path(info.logs["worker"]).read_text()
    assert worker_log.rstrip().endswith("stopped"), worker_log[-2000:]
    assert not any(sign in worker_log for sign in CRASH_SIGNS), worker_log[-2000:]

    again = await run_many([[ROLLOUT, "dev", "down", "--dir", str(own_stack)]] * 10, env)
    check(again, {0})
    assert all("nothing was running" in r.out for r in again)
