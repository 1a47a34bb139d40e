"""Histories of earlier runs replay on today's workflow code without non-determinism.

A running multi-day rollout survives a worker upgrade only if this holds. The histories
in tests/histories/ come from real runs on the dev server (scripts/capture_histories.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import workflow_runner
from workflows.rollout import RolloutWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_the_three_kinds_of_run_are_kept() -> None:
    # The first three come from runs before rollouts owned and read back their target.
    assert {p.stem for p in HISTORIES} >= {"promoted", "rolled_back", "continued_as_new"}
    assert {p.stem for p in HISTORIES} >= {
        "owned_promoted",
        "owned_refused",
        "owned_rolled_back",
        "owned_continued_as_new",
    }
    # Recorded since the workflow takes one RolloutInput.
    assert {p.stem for p in HISTORIES} >= {
        "input_promoted",
        "input_refused",
        "input_rolled_back",
        "input_continued_as_new",
    }
    # Recorded before channels heard events, by the code of then, with the plan's webhook:
    # the notify activities of old runs, as a new worker meets them.
    assert {p.stem for p in HISTORIES} >= {
        "webhook_promoted",
        "webhook_refused",
        "webhook_rolled_back",
        "webhook_continued_as_new",
    }
    # Recorded since channels hear events (`capture_histories.py --notify`): each event's
    # notify activity, the new ones on the notify-more-events patch.
    assert {p.stem for p in HISTORIES} >= {
        "notify_promoted",
        "notify_refused",
        "notify_rolled_back",
        "notify_continued_as_new",
    }
    # Recorded since a rollout writes its report when it ends (`--prefix report_ --notify`):
    # the write_report activity on the report-at-end patch, before the final message.
    assert {p.stem for p in HISTORIES} >= {
        "report_promoted",
        "report_refused",
        "report_rolled_back",
        "report_continued_as_new",
    }
    # Recorded with hooks and a smoke check (`capture_histories.py --hooks`).
    assert {p.stem for p in HISTORIES} >= {"hooks_promoted", "hooks_rolled_back"}
    # Recorded since a rollback puts stable back first and no cancel stops it, and forward
    # commands ask the worker who signed them (`--prefix stop_ --notify`, `--hooks`).
    assert {p.stem for p in HISTORIES} >= {
        "stop_promoted",
        "stop_rolled_back",
        "stop_continued_as_new",
        "stop_hooks_rolled_back",
    }


@pytest.mark.parametrize("name", ["promoted", "owned_promoted", "input_promoted"])
def test_runs_since_rollout_input_start_with_one_argument(name: str) -> None:
    events = json.loads((HISTORIES[0].parent / f"{name}.json").read_text())["events"]
    arguments = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    assert len(arguments) == (1 if name.startswith("input_") else 2)


@pytest.mark.parametrize("sandbox", ["on", "off"])
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(
    path: Path, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the SDK's sandbox, and with the runner the worker uses (outside it by default).
    monkeypatch.setenv("ROLLOUT_WORKFLOW_SANDBOX", sandbox)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))
    replayer = Replayer(
        workflows=[RolloutWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
