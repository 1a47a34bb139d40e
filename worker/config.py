"""Connecting to Temporal the usual way: TEMPORAL_* variables and the temporal.toml profile."""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_TASK_QUEUE = "rollouts"


def task_queue() -> str:
    return os.environ.get("ROLLOUT_TASK_QUEUE", DEFAULT_TASK_QUEUE)


def connect_config() -> dict[str, Any]:
    """Keyword arguments for Client.connect from the environment and config file."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    config["data_converter"] = pydantic_data_converter
    return config


async def connect(runtime: Runtime | None = None) -> Client:
    """A client that speaks pydantic, connected as the environment says."""
    config = connect_config()
    if runtime is not None:
        config["runtime"] = runtime
    return await Client.connect(**config)
