"""Recorded releases replay on today's ReleaseWorkflow without non-determinism.

tests/histories/release/ holds a release that continued-as-new between waves (its first
run), one that halted and rolled every promoted target back (rollback_all), and an
operator's rollback of a release sent to its targets (``commanded_rollback``), recorded on
the time-skipping server with activity doubles by tests/workflow/test_release.py with
ROLLOUT_CAPTURE_HISTORIES=1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflow.test_replay import assert_of_this_version
from workflows.release import ReleaseWorkflow
from workflows.rollout import RolloutWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories" / "release").glob("*.json"))


def test_the_recorded_releases_are_kept() -> None:
    assert {p.stem for p in HISTORIES} >= {
        "promoted_continued_as_new",
        "rolled_back_all",
        "commanded_rollback",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_release_history_replays_without_nondeterminism(path: Path) -> None:
    assert_of_this_version(path)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))
    kinds = {event.event_type for event in history.events}
    assert EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED in kinds
    replayer = Replayer(
        workflows=[ReleaseWorkflow, RolloutWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
