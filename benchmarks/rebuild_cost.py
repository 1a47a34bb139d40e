"""What it costs a worker to rebuild a rollout from its history; prints one JSON object.

A worker rebuilds a workflow (a fresh sandbox, the workflow's module imported into it, the
history replayed) for every new run, and for every run it has to load again: after a
restart, an eviction from its cache, or a workflow task moved off its sticky queue. This
replays one history ``--times`` times in one process, as a worker would, and
reports the CPU time per rebuild.

Python compiles the workflow module for each sandbox unless it finds bytecode; with
PYTHONDONTWRITEBYTECODE set (common in containers, and set on this project's machines)
there is none. ``--bytecode-cache DIR`` lets Python keep bytecode in DIR instead
(``sys.pycache_prefix``), which is what the worker does (``worker.main.keep_bytecode``).

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/rebuild_cost.py [--times 200]
        [--history PATH] [--bytecode-cache DIR]

Without ``--history`` the history is recorded first, by today's workflow code: the seeds'
SAFE plan (``benchmarks/history.py``) checked once a day, on the time-skipping test
server with instant activity doubles, promoted (about 110 events, like the captured run
below). A stored history replays only on the code that can read it.

Today's figures, without and with a bytecode cache::

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/rebuild_cost.py --times 100
    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/rebuild_cost.py --times 100 \
        --bytecode-cache DIR

The earlier figures in benchmarks/README.md ("Profiles, and the cuts measured on the
way": 118.4 and 102.1 ms without a bytecode cache, 93.8 and 90.5 ms with one) came from the
same commands with ``--history tests/histories/owned_promoted.json`` (121 events), on the
code of then: that history was dropped when the histories were recorded again on one
history version.

``--quick`` rebuilds three times (a few seconds with the recording): the same JSON, for
the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


QUICK_TIMES = 3


async def recorded() -> dict[str, Any]:
    """A promoted rollout's history, recorded now (the history's JSON, as the UI exports it)."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from benchmarks.history import ACTIVITIES, safe_plan
    from plans.runtime.inputs import RolloutInput
    from workflows.rollout import RolloutWorkflow

    plan = safe_plan("1d")
    server = Path(sys.executable).parent / "temporal-test-server"
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(server)
    ) as env:
        with ThreadPoolExecutor(4) as executor:
            async with Worker(
                env.client,
                task_queue="rebuild-cost",
                workflows=[RolloutWorkflow],
                activities=ACTIVITIES,
                activity_executor=executor,
            ):
                handle = await env.client.start_workflow(
                    RolloutWorkflow.run,
                    RolloutInput(plan=plan),
                    id=plan.workflow_id,
                    task_queue="rebuild-cost",
                )
                await handle.result()
                history = await handle.fetch_history()
    return history.to_json_dict()


async def rebuild(history_path: Path | None, times: int) -> dict[str, Any]:
    from temporalio.client import WorkflowHistory
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workflows.lease import TargetLease
    from workflows.rollout import RolloutWorkflow

    if history_path is None:
        data, shown = await recorded(), "recorded now: the SAFE plan, checks every day, promoted"
    else:
        data = json.loads(history_path.read_text())
        shown = str(
            history_path.relative_to(ROOT) if history_path.is_relative_to(ROOT) else history_path
        )
    histories = [WorkflowHistory.from_json(f"rebuild-{i}", data) for i in range(times)]
    replayer = Replayer(
        workflows=[RolloutWorkflow, TargetLease], data_converter=pydantic_data_converter
    )
    cpu, wall = time.process_time(), time.perf_counter()

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    await replayer.replay_workflows(each(), raise_on_replay_failure=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    events = len(histories[0].events)
    return {
        "history": shown,
        "events": events,
        "rebuilds": times,
        "cpu_ms_per_rebuild": round(1000 * cpu / times, 2),
        "wall_ms_per_rebuild": round(1000 * wall / times, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=200)
    parser.add_argument(
        "--history", type=Path, help="a stored history (default: one recorded first)"
    )
    parser.add_argument("--bytecode-cache", type=Path, help="keep bytecode in this folder")
    parser.add_argument("--quick", action="store_true", help=f"--times {QUICK_TIMES}")
    args = parser.parse_args()
    if args.quick:
        args.times = QUICK_TIMES
    if args.bytecode_cache is not None:
        sys.pycache_prefix = str(args.bytecode_cache.resolve())
        sys.dont_write_bytecode = False
    sys.path.insert(0, str(ROOT))
    history = args.history.resolve() if args.history is not None else None
    result = asyncio.run(rebuild(history, args.times))
    result["bytecode"] = (
        f"kept in {args.bytecode_cache}"
        if args.bytecode_cache is not None
        else ("not written" if sys.dont_write_bytecode else "beside the sources")
    )
    print(json.dumps(result, indent=2))
    from client.connection import end_process

    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
