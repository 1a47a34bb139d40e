"""RolloutInput: the one argument of a rollout run, carried whole into its next run."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from plans.runtime.inputs import RolloutInput
from plans.runtime.progress import RolloutProgress
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


def test_the_next_run_keeps_the_settings_and_carries_the_progress() -> None:
    start = RolloutInput(plan=make_plan(), checks_per_run=2, visibility=True)
    carried = start.model_copy(update={"progress": RolloutProgress(stage_index=1, checks=12)})
    decoded = RolloutInput.model_validate(carried.model_dump(mode="json"))
    assert decoded.progress is not None and decoded.progress.stage_index == 1
    assert (decoded.checks_per_run, decoded.visibility) == (2, True)


def test_a_plan_alone_is_not_an_input() -> None:
    # The plan passed alone was the argument of runs of history version 1, which drain
    # before a worker of this version starts (docs/upgrading.md).
    with pytest.raises(ValidationError):
        RolloutInput.model_validate(make_plan().model_dump(mode="json"))
