"""The worker's settings from the environment: its workflow runner, its sticky timeout and
the folders it writes in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker.main import keep_bytecode, prepare_folders, sticky_timeout, workflow_runner

WORKER = str(Path(sys.executable).parent / "rollout-worker")


@pytest.mark.parametrize("value", [None, "", "off", "OFF "])
def test_workflows_run_outside_the_sandbox_by_default(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("ROLLOUT_WORKFLOW_SANDBOX", raising=False)
    else:
        monkeypatch.setenv("ROLLOUT_WORKFLOW_SANDBOX", value)
    assert isinstance(workflow_runner(), UnsandboxedWorkflowRunner)


def test_on_puts_them_back_in_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_WORKFLOW_SANDBOX", "on")
    assert isinstance(workflow_runner(), SandboxedWorkflowRunner)


def test_any_other_value_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_WORKFLOW_SANDBOX", "yes")
    with pytest.raises(ValueError, match="must be on or off, not 'yes'"):
        workflow_runner()


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 30.0), ("", 30.0), ("10", 10.0), (" 2.5 ", 2.5)]
)
def test_the_sticky_timeout_is_read_in_seconds(
    value: str | None, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("ROLLOUT_STICKY_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("ROLLOUT_STICKY_TIMEOUT", value)
    assert sticky_timeout() == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["0", "-5", "601", "nan", "ten", "30s"])
def test_a_sticky_timeout_that_is_not_seconds_is_refused_by_name(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_STICKY_TIMEOUT", value)
    with pytest.raises(ValueError, match=f"from 1 to 600, not '{value}'"):
        sticky_timeout()


def test_the_worker_makes_its_folders_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_NOTIFY_DIR", str(tmp_path / "state" / "notices"))
    monkeypatch.setenv("ROLLOUT_REPORT_DIR", str(tmp_path / "reports"))
    prepare_folders()
    for made in (tmp_path / "state" / "notices", tmp_path / "reports"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o750


def test_a_worker_given_a_folder_others_may_write_refuses_to_start(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
        "ROLLOUT_NOTIFY_DIR": str(shared),
    }
    done = subprocess.run([WORKER], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert f"rollout-worker: {shared} may be written by others (mode 777)" in done.stderr
    assert "ROLLOUT_NOTIFY_DIR" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "ROLLOUT_PLAN_SECRETS",
            "PROMETHEUS-TOKEN",
            "ROLLOUT_PLAN_SECRETS holds 'PROMETHEUS-TOKEN'",
        ),
        ("ROLLOUT_OUTBOUND_HOSTS", "http://x", "ROLLOUT_OUTBOUND_HOSTS holds 'http://x'"),
    ],
)
def test_a_worker_refuses_to_start_with_a_malformed_plan_policy(
    name: str, value: str, said: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
        name: value,
    }
    done = subprocess.run([WORKER], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"rollout-worker: {said}")
    assert "Traceback" not in done.stderr


def test_the_bytecode_cache_is_a_folder_of_the_workers_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    folder = tmp_path / f"rollout-worker-{os.getuid()}"
    # Someone got to the predictable name first, to plant compiled code: the cache stays off.
    folder.mkdir()
    folder.chmod(0o777)
    keep_bytecode()
    assert sys.pycache_prefix is None and sys.dont_write_bytecode
    folder.rmdir()
    keep_bytecode()
    assert sys.pycache_prefix == str(folder) and not sys.dont_write_bytecode
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
