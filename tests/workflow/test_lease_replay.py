"""Recorded target leases replay on today's TargetLease without non-determinism.

tests/histories/lease/ holds a lease released by its promoted owner and one that put
stable back after its owner was terminated, recorded on the dev server
(``scripts/capture_histories.py --leases``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflow.test_replay import assert_of_this_version
from worker.main import workflow_runner
from workflows.lease import TargetLease

HISTORIES = sorted((Path(__file__).parent.parent / "histories" / "lease").glob("*.json"))


def test_the_recorded_leases_are_kept() -> None:
    assert {p.stem for p in HISTORIES} >= {"released", "restored"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_lease_history_replays_without_nondeterminism(path: Path) -> None:
    assert_of_this_version(path)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))
    replayer = Replayer(
        workflows=[TargetLease],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
