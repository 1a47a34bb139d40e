"""The exit codes of `rollout`, and the one a rollout's end gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI's help reads the codes; the types load with the commands
    from client.records import TemporalRecords
    from plans.runtime.state import RolloutState

EXIT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_ROLLED_BACK = 3
EXIT_ABORTED = 4
EXIT_FROM_RECORDS = 5
"""`status` showed Temporal's own records of the run: no worker answered its status query."""
EXIT_INTERRUPTED = 130


def exit_code(state: RolloutState) -> int:
    """The exit code for a rollout that ended in ``state``."""
    from plans.runtime.state import RolloutState

    if state == RolloutState.PROMOTED:
        return EXIT_PROMOTED
    if state == RolloutState.ROLLED_BACK:
        return EXIT_ROLLED_BACK
    if state == RolloutState.REFUSED:
        return EXIT_ERROR  # another rollout moves its target; nothing was moved
    return EXIT_ABORTED


def records_exit_code(records: TemporalRecords) -> int:
    """A run that ended while no worker answered: its end as recorded by Temporal."""
    if records.final_state is not None:
        return exit_code(records.final_state)
    if records.execution_status == "canceled":
        return EXIT_ABORTED
    # Terminated or timed out: no rollback ran, so traffic may still reach the canary.
    return EXIT_ERROR
