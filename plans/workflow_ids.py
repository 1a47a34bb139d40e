"""The workflow ids and types that name a rollout and a release, without Temporal's SDK.

``plans.runtime.visibility`` re-exports them beside the search attributes; the plan's own models
read them from here, so that validating a plan loads nothing of the SDK.
"""

from __future__ import annotations

WORKFLOW_ID_PREFIX = "rollout-"
# The rollout's workflow type, as the server and visibility queries name it.
ROLLOUT_WORKFLOW = "RolloutWorkflow"
RELEASE_WORKFLOW = "ReleaseWorkflow"


def rollout_workflow_id(service: str) -> str:
    """The workflow id of a service's rollout: one running rollout per service."""
    return f"{WORKFLOW_ID_PREFIX}{service}"


def service_of(workflow_id: str) -> str:
    """The service a rollout's workflow id names."""
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)
