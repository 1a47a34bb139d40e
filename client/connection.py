"""Connecting to Temporal the usual way, and ending a process that did.

The client reads TEMPORAL_* variables and the temporal.toml profile (see ``connect_config``).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# The SDK is imported when a client is made: the CLI reads this module's defaults for its
# help, which must not wait for it.
if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_TASK_QUEUE = "rollouts"
# The dev stack's folder, where a client finds its server and its signing key when unset.
DEFAULT_STACK_DIR = Path(".rollout")


def task_queue() -> str:
    return os.environ.get("ROLLOUT_TASK_QUEUE", DEFAULT_TASK_QUEUE)


def stack_dir() -> Path:
    """The dev stack's folder: $ROLLOUT_DIR, else ./.rollout."""
    return Path(os.environ.get("ROLLOUT_DIR", DEFAULT_STACK_DIR))


def user_name() -> str:
    """The local user's name: who the CLI says is acting when nobody says otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def connect_config() -> dict[str, Any]:
    """Keyword arguments for Client.connect from the environment and config file."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.envconfig import ClientConfig

    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    config["data_converter"] = pydantic_data_converter
    return config


async def connect(runtime: Runtime | None = None, program: str = "rollout") -> Client:
    """A client that speaks pydantic, connected as the environment says.

    With the OpenTelemetry variables set it traces its calls, and the workers made from it
    trace their workflows and activities (``client.tracing``; ``program`` names the spans'
    service unless OTEL_SERVICE_NAME does).
    """
    from temporalio.client import Client

    from client.tracing import interceptors

    config = connect_config()
    if runtime is not None:
        config["runtime"] = runtime
    config["interceptors"] = interceptors(program)
    return await Client.connect(**config)


def end_process(code: int) -> NoReturn:
    """Flush what the process printed and end it with ``code``, skipping interpreter shutdown.

    The SDK's Rust runtime keeps native threads that call into Python; if CPython finalizes
    while they run, the process dies with SIGABRT ("PyGILState_Release: thread state ...
    must be current") or SIGSEGV after its work is done (temporalio/sdk-python#300). A short
    process that made a client must therefore never finalize: it flushes, then ``os._exit``.
    """
    tracing = sys.modules.get("client.tracing")  # spans still held by the batch exporter
    if tracing is not None:
        tracing.flush()
    logging = sys.modules.get("logging")  # a program that never logged has nothing to flush
    if logging is not None:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`rollout list | head`) or stream: nothing more can be said.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
