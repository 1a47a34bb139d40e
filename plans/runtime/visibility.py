"""How a rollout is found: its workflow id and the search attributes it publishes.

One definition, used by the workflow that upserts them, the operations that register and
read them, and the dev stack that starts the server with them (docker-compose.yml lists
them too; a test keeps it in step).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from plans.workflow_ids import RELEASE_WORKFLOW as RELEASE_WORKFLOW
from plans.workflow_ids import ROLLOUT_WORKFLOW as ROLLOUT_WORKFLOW
from plans.workflow_ids import WORKFLOW_ID_PREFIX as WORKFLOW_ID_PREFIX
from plans.workflow_ids import rollout_workflow_id as rollout_workflow_id
from plans.workflow_ids import service_of as service_of

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
