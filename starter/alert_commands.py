"""`rollout alerts serve`: the Alertmanager receiver (``receiver``), started from the CLI."""

from __future__ import annotations

import argparse

from receiver import serve
from starter.server import use_dev_stack_when_unset


async def cmd_alerts_serve(args: argparse.Namespace) -> int:
    """`rollout alerts serve`: the receiver, talking to the server every command talks to."""
    use_dev_stack_when_unset()
    return await serve.cmd_alerts_serve(args)
