"""History stays bounded and versioned: each run says which history version wrote it, and
after its share of work a long workflow goes on in a new run (which keeps the memo)."""

from __future__ import annotations

from typing import NoReturn, Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow

from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION


class Carried(Protocol):
    """A workflow's progress, carried whole into its next run."""

    def start_next_run(self) -> None:
        """Count the new run and clear what counts the work done in this one."""


InputT = TypeVar("InputT", bound=BaseModel)


def record_history_version() -> None:
    """Say in the run's memo which history version writes it, unless its start said so.

    For runs started without the memo (the Temporal UI, an older CLI); continue-as-new
    carries the memo into the next run.
    """
    if workflow.memo_value(HISTORY_MEMO_KEY, None) != HISTORY_VERSION:
        workflow.upsert_memo({HISTORY_MEMO_KEY: HISTORY_VERSION})


def run_is_full(done: int, per_run: int) -> bool:
    """Time for a new run: this one did its share of work, or Temporal says its history is big."""
    return done >= per_run or workflow.info().is_continue_as_new_suggested()


async def continue_in_new_run(input: InputT, progress: Carried) -> NoReturn:
    """Once every handler has finished, go on in a new run whose input carries ``progress``."""
    await workflow.wait_condition(workflow.all_handlers_finished)
    progress.start_next_run()
    workflow.continue_as_new(input.model_copy(update={"progress": progress}))
