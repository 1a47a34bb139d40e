"""Starting, asking and telling workflows through their typed definitions.

The definitions are in ``plans.runtime.messages``.

Every call names a definition, never a string or a workflow class: the answer comes back as
the definition's type, and no caller imports a workflow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio.client import Client, WorkflowHandle

from plans.runtime.messages import Query, Signal, Update, WorkflowType

Arg = TypeVar("Arg")
Result = TypeVar("Result")


async def start(
    client: Client, workflow: WorkflowType[Arg, Result], arg: Arg, **options: Any
) -> WorkflowHandle[Any, Result]:
    """Start ``workflow`` with ``arg``; ``options`` are those of Client.start_workflow."""
    handle = await client.start_workflow(workflow.name, arg, result_type=workflow.result, **options)
    return cast(WorkflowHandle[Any, Result], handle)


async def ask(
    handle: WorkflowHandle[Any, Any],
    query: Query[Result],
    *,
    rpc_timeout: timedelta | None = None,
) -> Result:
    """The workflow's answer to ``query``."""
    answer = await handle.query(query.name, result_type=query.result, rpc_timeout=rpc_timeout)
    return cast(Result, answer)


async def tell(handle: WorkflowHandle[Any, Any], signal: Signal[Arg], arg: Arg) -> None:
    """Send ``signal`` with its argument."""
    await handle.signal(signal.name, arg)


async def update(
    handle: WorkflowHandle[Any, Any],
    definition: Update[Arg, Result],
    arg: Arg,
    *,
    rpc_timeout: timedelta | None = None,
) -> Result:
    """Run the update and wait for its answer (a refusal raises WorkflowUpdateFailedError)."""
    answer = await handle.execute_update(
        definition.name, arg, result_type=definition.result, rpc_timeout=rpc_timeout
    )
    return cast(Result, answer)
