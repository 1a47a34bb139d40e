"""Which runner the worker gives its workflows: the SDK's sandbox only when asked for."""

from __future__ import annotations

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker.main import workflow_runner


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
