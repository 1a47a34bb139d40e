"""Which Temporal server `rollout` talks to, and its links into the Temporal UI."""

from __future__ import annotations

import os

from temporalio.client import Client

import devstack
from client.connection import connect, stack_dir
from plans import RolloutError


def use_dev_stack_when_unset() -> devstack.StackInfo | None:
    """With no address from the environment or a profile, use the dev stack in ./.rollout.

    The order is TEMPORAL_ADDRESS, then the temporal.toml profile, then a dev stack that
    is up in $ROLLOUT_DIR (default ./.rollout), then localhost:7233.
    """
    directory = stack_dir()
    if not devstack.stack_file(directory).exists():
        return None
    info = devstack.load(directory)
    if not address_configured() and devstack.is_up(directory):
        os.environ["TEMPORAL_ADDRESS"] = info.temporal_address
        os.environ.setdefault("TEMPORAL_NAMESPACE", info.namespace)
        os.environ.setdefault("ROLLOUT_TASK_QUEUE", info.task_queue)
    return info


def address_configured() -> bool:
    """TEMPORAL_ADDRESS or the active temporal.toml profile names a server."""
    from temporalio.envconfig import ClientConfig

    return "target_host" in ClientConfig.load_client_connect_config()


async def connect_client() -> Client:
    """A client for the server the environment names, else the dev stack's (see EPILOG)."""
    use_dev_stack_when_unset()
    try:
        return await connect()
    except RuntimeError as error:
        address = os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
        raise RolloutError(
            f"cannot reach Temporal at {address} ({error}). Set TEMPORAL_ADDRESS, or start"
            " the dev stack with `rollout dev up`"
        ) from None


def ui_link(workflow_id: str) -> str:
    """The Temporal UI's page of a workflow."""
    base = os.environ.get("TEMPORAL_UI_URL")
    namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
    if base is None:
        info = use_dev_stack_when_unset()
        base = info.ui_url if info is not None else "http://localhost:8233"
    return f"{base.rstrip('/')}/namespaces/{namespace}/workflows/{workflow_id}"
