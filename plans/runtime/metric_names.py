"""The product's own metric names: recorded by the workflows and activities, served by the worker.

The workflows record theirs through ``workflow.metric_meter()``
(``workflows.rollout.metering``), the shift activity its own (``activities.rollout``); the
worker serves both on its Prometheus endpoint (``ROLLOUT_WORKER_METRICS``) with these
buckets.
"""

STARTED = "rollout_started_total"
ENDED = "rollout_ended_total"
CHECKS = "rollout_checks_total"
VERDICTS = "rollout_gate_verdicts_total"
GATE_VALUE = "rollout_gate_value"
CANARY_WEIGHT = "rollout_canary_weight"
ROLLBACKS = "rollout_rollbacks_total"
RESTORE_SECONDS = "rollout_restore_seconds"
RESTORE_FAILURES = "rollout_restore_failures_total"
COMMANDS = "rollout_commands_total"
DRIFT = "rollout_drift_total"

# Activity side (activities/rollout.py): each shift the router was asked for, and how long.
SHIFTS = "rollout_shifts_total"
SHIFT_SECONDS = "rollout_shift_seconds"

# Buckets for the worker's Prometheus endpoint (the SDK's defaults are in milliseconds).
BUCKETS = {
    SHIFT_SECONDS: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    RESTORE_SECONDS: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
}

# Every series the worker adds; a histogram also serves _bucket, _sum and _count.
EXPORTED = (
    STARTED,
    ENDED,
    CHECKS,
    VERDICTS,
    GATE_VALUE,
    CANARY_WEIGHT,
    ROLLBACKS,
    RESTORE_SECONDS,
    RESTORE_FAILURES,
    COMMANDS,
    DRIFT,
    SHIFTS,
    SHIFT_SECONDS,
)
HISTOGRAMS = (RESTORE_SECONDS, SHIFT_SECONDS)
