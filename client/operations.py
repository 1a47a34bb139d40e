"""What the operator CLI does against Temporal: start, status, commands. No printing here.

One module per concern (``starting``, ``steering``, ``reading``, ``records``, ``history``,
``runs``); this module gathers their public names, for the CLI's callers outside it.
"""

from __future__ import annotations

from client.history import HistoryLine, event_text, history_tail
from client.reading import follow, read_status, status, watch
from client.records import (
    PendingActivity,
    Poller,
    TemporalRecords,
    records,
    task_queue_pollers,
    worker_polls,
)
from client.runs import QUERY_TIMEOUT, Ending, NoSuchRollout, ended_how, workflow_id
from client.starting import (
    SEARCH_ATTRIBUTES,
    AlreadyRolling,
    TargetOwned,
    await_target,
    register_search_attributes,
    search_attributes_registered,
    start_rollout,
    summary,
)
from client.steering import CommandRefused, send_command

__all__ = [
    "QUERY_TIMEOUT",
    "SEARCH_ATTRIBUTES",
    "AlreadyRolling",
    "CommandRefused",
    "Ending",
    "HistoryLine",
    "NoSuchRollout",
    "PendingActivity",
    "Poller",
    "TargetOwned",
    "TemporalRecords",
    "await_target",
    "ended_how",
    "event_text",
    "follow",
    "history_tail",
    "read_status",
    "records",
    "register_search_attributes",
    "search_attributes_registered",
    "send_command",
    "start_rollout",
    "status",
    "summary",
    "task_queue_pollers",
    "watch",
    "worker_polls",
    "workflow_id",
]
