"""How a rollout is found: its workflow id and the search attributes it publishes.

One definition, used by the workflow that upserts them, the operations that register and
read them, and the dev stack that starts the server with them (docker-compose.yml lists
them too; a test keeps it in step).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SERVICE = SearchAttributeKey.for_keyword("RolloutService")
VERSION = SearchAttributeKey.for_keyword("RolloutVersion")
STAGE = SearchAttributeKey.for_keyword("RolloutStage")
WEIGHT = SearchAttributeKey.for_int("RolloutWeight")
STATE = SearchAttributeKey.for_keyword("RolloutState")
# A release across a fleet: each target's rollout names its target and its release.
TARGET = SearchAttributeKey.for_keyword("RolloutTarget")
RELEASE = SearchAttributeKey.for_keyword("RolloutRelease")

ROLLOUT_ATTRIBUTES: tuple[SearchAttributeKey[str] | SearchAttributeKey[int], ...] = (
    SERVICE,
    VERSION,
    STAGE,
    WEIGHT,
    STATE,
    TARGET,
    RELEASE,
)

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
