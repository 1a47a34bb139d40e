"""One real stack per module (Temporal dev server, HAProxy, Prometheus, demo, worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

import devstack
from tests.faults.chaos import reset_router
from tests.stack.conftest import real_stack


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # HAProxy's unix socket path must stay short: tmp_path_factory's folders are.
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> Iterator[devstack.StackInfo]:
    with real_stack(stack_dir) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture(autouse=True)
def clean_router(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on a stack: 100% stable and a healthy canary again."""
    yield
    if "stack" in request.fixturenames:
        stack: devstack.StackInfo = request.getfixturevalue("stack")
        reset_router(stack)


@pytest.fixture
async def launched(client: Client) -> AsyncIterator[list[str]]:
    """Workflow ids a test started; any still running at its end is terminated."""
    ids: list[str] = []
    yield ids
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        try:
            described = await handle.describe()
            if described.status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("the test ended")
        except RPCError:
            pass
