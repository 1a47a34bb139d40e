"""A release across targets: ``ReleaseWorkflow`` (``workflow.py``) and its parts.

The targets' rollouts as child workflows (``children.py``), the wave decisions
(``decisions.py``), the release's audit trail and commands (``log.py``) and a command
forwarded to the running targets (``forwarding.py``).
"""

from workflows.release.workflow import ReleaseWorkflow

__all__ = ["ReleaseWorkflow"]
