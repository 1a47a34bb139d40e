"""The names the rollout's activities are registered under, as histories record them.

The workflow calls the activities by their functions; the readers of a history (the
report, and `rollout status` when no worker answers) meet them again as names in its
events, and take them from here.
"""

SHIFT_TRAFFIC = "shift_traffic"
READ_TRAFFIC = "read_traffic"
CHECK_GATES = "check_gates"
LOOK = "look"
NOTIFY = "notify"

# The local activities whose markers hold a check's verdicts.
CHECKS = (CHECK_GATES, LOOK)
