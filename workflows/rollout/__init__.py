"""The rollout of one service: ``RolloutWorkflow`` (``workflow.py``) and its parts.

``workflow.py`` is the runbook: a stage shifts, bakes and is judged. Each part writes its
own piece of the progress: the command log (``commands.py``), the bake clock
(``clock.py``), a check's look and judgement (``checking.py``, ``decisions.py``), the
target and its router (``target.py``), windows and freezes (``windows.py``), hooks
(``hooks.py``), messages (``notices.py``), the status (``status.py``), stopping with
stable back first (``stopping.py``), the report at the end (``ending.py``) and the
product's metrics (``metering.py``).
"""

from workflows.rollout.workflow import RolloutWorkflow

__all__ = ["RolloutWorkflow"]
