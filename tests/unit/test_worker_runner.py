"""The worker's settings from the environment: its workflow runner and its sticky timeout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker.main import sticky_timeout, workflow_runner


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
