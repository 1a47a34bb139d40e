"""Continue-as-new when the server suggests it, on a dev server told to suggest it early."""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from plans import GateOutcome, RolloutState
from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION
from tests.workflow.conftest import Doubles, make_plan, verdicts
from workflows.rollout import RolloutWorkflow

pytestmark = pytest.mark.integration
TEMPORAL = Path(sys.executable).parent / "temporal"


async def test_rollout_continues_as_new_when_the_server_suggests_it() -> None:
    doubles = Doubles(judge=lambda n, check: verdicts(check, GateOutcome.PASS))
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(TEMPORAL),
        ui=False,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=40",
        ],
    ) as env:
        queue = f"can-{uuid.uuid4().hex[:6]}"
        plan = make_plan(
            gates=[{"name": "errors", "query": 'sum(rate(e{server="$canary"}[1s]))', "max": 1}],
            stages=[
                {"name": "a", "weight": 10, "bake": "6s", "check_every": "1s"},
                {"name": "b", "weight": 100, "bake": "3s", "check_every": "1s"},
            ],
        )
        with ThreadPoolExecutor(4) as executor:
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[RolloutWorkflow],
                activities=doubles.activities(),
                activity_executor=executor,
            ):
                handle = await operations.start_rollout(env.client, plan, queue)
                await handle.signal("pause", {"by": "ana", "reason": "across runs"})
                await handle.signal("resume", {"by": "ana", "reason": "go on"})
                result = await handle.result()
                status = await operations.status(env.client, plan.service)
        first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        events = [e async for e in first.fetch_history_events()]
        # The new run carries the history version the first one recorded (plans.runtime.versions).
        latest = await env.client.get_workflow_handle(handle.id).describe()
        assert (await latest.memo()).get(HISTORY_MEMO_KEY) == HISTORY_VERSION
    assert result.state == RolloutState.PROMOTED
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(events) < 80  # far below the fixed check count: the suggestion did it
    assert status.run_count >= 2
    assert [c.kind for c in status.commands] == ["pause", "resume"]
    assert doubles.shifts == [10, 100]
