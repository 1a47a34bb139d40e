"""Histories of this history version replay on today's workflow code without non-determinism.

A running multi-day rollout survives a worker restart or replacement only if this holds.
Runs of an earlier history version drain before a worker of this one starts (worker/drain.py,
docs/upgrading.md), so only histories of this version are kept: tests/histories/ holds real
runs on the dev server (scripts/capture_histories.py) and two from the time-skipping server.
Re-record them all, and raise HISTORY_VERSION, when a change stops them replaying.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION
from worker.main import workflow_runner
from workflows.rollout import RolloutWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_the_kinds_of_run_of_this_version_are_kept() -> None:
    # `scripts/capture_histories.py --notify`: every event told to a webhook and a channel.
    assert {p.stem for p in HISTORIES} >= {
        "promoted",  # with a pause and a resume, and a drift repaired
        "refused",  # the target owned by another rollout
        "rolled_back",  # by its gate
        "matched",  # a header match, its drift, then a rollback by command
        "continued_as_new",  # mid-bake
    }
    # `--hooks`: a gate answering 202 then yes, a check, a notify and an event hook, a smoke
    # check; a gate that refuses and an on_rollback hook after the restore.
    assert {p.stem for p in HISTORIES} >= {"hooks_promoted", "hooks_rolled_back"}
    # tests/workflow/test_windows.py with ROLLOUT_CAPTURE_HISTORIES=1.
    assert {p.stem for p in HISTORIES} >= {"windows_dst", "windows_freeze"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_each_run_records_its_history_version_and_no_patch(path: Path) -> None:
    assert_of_this_version(path)


def assert_of_this_version(path: Path) -> None:
    """The run recorded this history version in its memo, and took no patch branch."""
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    upserted = [
        e.workflow_properties_modified_event_attributes.upserted_memo.fields
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED
    ]
    started = history.events[0].workflow_execution_started_event_attributes.memo.fields
    recorded = [f[HISTORY_MEMO_KEY] for f in [started, *upserted] if HISTORY_MEMO_KEY in f]
    assert recorded and all(
        pydantic_data_converter.payload_converter.from_payload(r) == HISTORY_VERSION
        for r in recorded
    )
    markers = {e.marker_recorded_event_attributes.marker_name for e in history.events}
    assert "core_patch" not in markers


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
