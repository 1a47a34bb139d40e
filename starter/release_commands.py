"""`rollout` on releases across a fleet: status as a tree, and following one to its end.

Starting a release and its commands go through ``client.api`` like a rollout's."""

from __future__ import annotations

import argparse
import asyncio
import json

from temporalio.client import Client

from client import releases
from plans.release_plan import release_workflow_id
from starter import release_view
from starter.render import out
from starter.server import ui_link

FOLLOW_EVERY_S = 1.0


async def follow(client: Client, service: str, *, as_json: bool = False) -> int:
    """Print the tree (or a JSON line) each time it changes, until the release ends; its
    exit code."""
    last = ""
    while True:
        status = await releases.release_status(client, service)
        if as_json:
            shown = status.model_dump_json()
            if shown != last:
                print(json.dumps({"source": "release", **status.model_dump(mode="json")}))
                last = shown
            if status.state.final:
                return release_view.release_exit_code(status.state)
            await asyncio.sleep(FOLLOW_EVERY_S)
            continue
        children = await releases.target_statuses(client, status)
        tree = release_view.release_tree(status, children)
        with out.capture() as captured:
            out.print(tree)
        shown = captured.get()
        if shown != last:
            out.print(tree)
            last = shown
        if status.state.final:
            return release_view.release_exit_code(status.state)
        await asyncio.sleep(FOLLOW_EVERY_S)


async def status(args: argparse.Namespace, client: Client) -> int:
    answer = await releases.release_status(client, args.service)
    if args.json:
        print(json.dumps({"source": "release", **answer.model_dump(mode="json")}, indent=2))
        return 0
    if args.watch:
        return await follow(client, args.service)
    out.print(release_view.release_tree(answer, await releases.target_statuses(client, answer)))
    out.print(f"Temporal UI: {ui_link(release_workflow_id(args.service))}")
    return 0
