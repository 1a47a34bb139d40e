"""What it costs a worker to rebuild a rollout from its history; prints one JSON object.

A worker rebuilds a workflow (a fresh sandbox, the workflow's module imported into it, the
history replayed) for every new run, and for every run it has to load again: after a
restart, an eviction from its cache, or a workflow task moved off its sticky queue. This
replays one captured history ``--times`` times in one process, as a worker would, and
reports the CPU time per rebuild.

Python compiles the workflow module for each sandbox unless it finds bytecode; with
PYTHONDONTWRITEBYTECODE set (common in containers, and set on this project's machines)
there is none. ``--bytecode-cache DIR`` lets Python keep bytecode in DIR instead
(``sys.pycache_prefix``), which is what benchmarks/proposals/worker-bytecode-cache.patch
has the worker do.

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/rebuild_cost.py [--times 200]
        [--history tests/histories/owned_promoted.json] [--bytecode-cache DIR]
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


async def rebuild(history_path: Path, times: int) -> dict[str, Any]:
    from temporalio.client import WorkflowHistory
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workflows.lease import TargetLease
    from workflows.rollout import RolloutWorkflow

    data = json.loads(history_path.read_text())
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
        "history": str(history_path.relative_to(ROOT)),
        "events": events,
        "rebuilds": times,
        "cpu_ms_per_rebuild": round(1000 * cpu / times, 2),
        "wall_ms_per_rebuild": round(1000 * wall / times, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=200)
    parser.add_argument(
        "--history", type=Path, default=ROOT / "tests" / "histories" / "owned_promoted.json"
    )
    parser.add_argument("--bytecode-cache", type=Path, help="keep bytecode in this folder")
    args = parser.parse_args()
    if args.bytecode_cache is not None:
        sys.pycache_prefix = str(args.bytecode_cache.resolve())
        sys.dont_write_bytecode = False
    sys.path.insert(0, str(ROOT))
    result = asyncio.run(rebuild(args.history.resolve(), args.times))
    result["bytecode"] = (
        f"kept in {args.bytecode_cache}"
        if args.bytecode_cache is not None
        else ("not written" if sys.dont_write_bytecode else "beside the sources")
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
