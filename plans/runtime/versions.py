"""The version of history the product's workflows write, and where each run records it.

A worker replays a run's history with its own workflow code, so it can take over only runs
whose history that code wrote. Each run records the history version it was started under
in its memo (``history_version``); a worker refuses to start while runs of another version
run on its task queue (``worker/drain.py``, docs/upgrading.md). Raise ``HISTORY_VERSION``
with any change to workflow code that a recorded history would not replay on.

Version 1 is every run recorded before the memo existed: they carry no ``history_version``.
"""

from __future__ import annotations

HISTORY_VERSION = 3
HISTORY_MEMO_KEY = "history_version"
# The workflows a worker of this product runs, as the server names their types.
WORKFLOW_TYPES = (
    "RolloutWorkflow",
    "ReleaseWorkflow",
    "TargetLease",
    "FreezeCalendar",
    "ScheduledStart",
)
