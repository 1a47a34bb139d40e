"""RolloutInput: one argument for new runs, and the two of earlier runs still read."""

from __future__ import annotations

from plans.inputs import CHECKS_PER_RUN, RolloutInput
from plans.state import RolloutProgress
from tests.workflow.conftest import make_plan


def test_a_new_run_passes_plan_progress_and_settings_in_one_model() -> None:
    plan = make_plan()
    start = RolloutInput(plan=plan, checks_per_run=7, visibility=True)
    decoded = RolloutInput.model_validate(start.model_dump(mode="json"))
    assert decoded == start
    assert decoded.progress is None
    assert set(start.model_dump()) == {
        "plan",
        "progress",
        "checks_per_run",
        "visibility",
        "release",
    }


def test_a_plan_alone_reads_as_the_input_of_an_earlier_run() -> None:
    plan = make_plan()
    decoded = RolloutInput.model_validate(plan.model_dump(mode="json"))
    assert decoded.plan == plan
    assert decoded.progress is None
    assert decoded.checks_per_run == CHECKS_PER_RUN
    assert decoded.visibility is False


def test_settings_come_out_of_an_earlier_runs_progress() -> None:
    plan = make_plan()
    legacy = RolloutProgress(stage_index=1, checks=12).model_dump(mode="json")
    legacy.update(checks_per_run=2, visibility=True, cancel_reason="")
    carried = RolloutInput(plan=plan).carrying(legacy)
    assert carried.progress is not None
    assert carried.progress.stage_index == 1 and carried.progress.checks == 12
    assert carried.checks_per_run == 2
    assert carried.visibility is True
    assert "checks_per_run" not in carried.progress.model_dump()


def test_no_progress_from_an_earlier_run_changes_nothing() -> None:
    start = RolloutInput(plan=make_plan(), checks_per_run=3)
    assert start.carrying(None) is start
