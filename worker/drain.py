"""Before a worker polls: no run on its task queue was written by another history version.

A worker replays a run with its own workflow code, which reads only the histories of its
own version (``plans.runtime.versions``). So running rollouts drain before an upgrade past a history
version: the worker refuses to start while runs of another version (or runs recorded before
versions, which carry none) run on its task queue, and names them (docs/upgrading.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION, WORKFLOW_TYPES

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution

SHOWN = 10  # runs named in the refusal; the check stops looking after as many


@dataclass(frozen=True)
class OtherRun:
    """A running workflow this worker's code cannot replay."""

    workflow_id: str
    run_id: str
    workflow_type: str
    version: int | None  # None: recorded before runs carried their history version

    def describe(self) -> str:
        version = "1 (no history_version)" if self.version is None else str(self.version)
        return f"{self.workflow_id} (run {self.run_id}, {self.workflow_type}): version {version}"


class OtherVersionsRunning(Exception):
    """Runs of another history version run on the task queue; the message says what to do."""

    def __init__(self, queue: str, runs: list[OtherRun]) -> None:
        self.runs = runs
        more = " (and perhaps more)" if len(runs) >= SHOWN else ""
        lines = [
            f"{len(runs)} running workflow(s){more} on task queue {queue!r} were written by"
            f" another history version than this worker's ({HISTORY_VERSION}):",
            *(f"  {run.describe()}" for run in runs),
            "This worker cannot replay them. Let them finish (promote, roll back or abort"
            " them) on workers of their own version, then start this one; see"
            " docs/upgrading.md. To start anyway, knowing each of those runs will fail its"
            " workflow tasks until it is ended or reset: --drain-check off",
        ]
        super().__init__("\n".join(lines))


def running_query(queue: str) -> str:
    """The visibility query of the product's runs that are running on ``queue``."""
    quoted = queue.replace("\\", "\\\\").replace('"', '\\"')
    types = ", ".join(f'"{name}"' for name in WORKFLOW_TYPES)
    return f'ExecutionStatus = "Running" AND TaskQueue = "{quoted}" AND WorkflowType IN ({types})'


async def other_versions(client: Client, queue: str) -> list[OtherRun]:
    """Up to ``SHOWN`` runs on ``queue`` whose history another version wrote.

    The version is read from the run's memo as visibility lists it, and where that is not
    this worker's, from the run's history: visibility may lag the first task, which records
    the version of the code that ran it. A run that has not finished a workflow task yet has
    no history to replay: any version may take it, whatever its start said.
    """
    found: list[OtherRun] = []
    async for execution in client.list_workflows(running_query(queue)):
        memo: dict[str, Any] = dict(await execution.memo())
        if memo.get(HISTORY_MEMO_KEY) == HISTORY_VERSION:
            continue
        began, version = await _recorded_version(client, execution)
        if not began or version == HISTORY_VERSION:
            continue
        found.append(
            OtherRun(
                workflow_id=execution.id,
                run_id=execution.run_id,
                workflow_type=execution.workflow_type,
                version=version if isinstance(version, int) else None,
            )
        )
        if len(found) >= SHOWN:
            break
    return found


async def refuse_other_versions(client: Client, queue: str) -> None:
    """Raise OtherVersionsRunning when runs of another history version run on ``queue``."""
    runs = await other_versions(client, queue)
    if runs:
        raise OtherVersionsRunning(queue, runs)


async def _recorded_version(client: Client, execution: WorkflowExecution) -> tuple[bool, Any]:
    """From the run's history: whether a workflow task of it has completed, and the version
    its first task recorded in the memo, else its start's (None if neither did)."""
    from temporalio.api.enums.v1 import EventType

    converter = client.data_converter.payload_converter
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    version: Any = None
    began = False
    async for event in handle.fetch_history_events(page_size=50):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            fields = event.workflow_execution_started_event_attributes.memo.fields
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            if began:
                break  # the first task's commands are all in: its upsert came with them
            began = True
            continue
        else:
            continue
        if HISTORY_MEMO_KEY in fields:
            version = converter.from_payload(fields[HISTORY_MEMO_KEY])
    return began, version
