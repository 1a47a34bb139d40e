"""How long a report takes to build and write from a recorded history; prints JSON.

Reads a history from tests/histories/ (default: a rolled-back run), builds its report
without Prometheus (its ranges are network time, measured on the real stack by the
write_report activity's duration in the run's history) and writes it as Markdown with its
PNGs, HTML with them embedded, and JSON, ``--runs`` times in a temporary folder.

    .venv/bin/python benchmarks/report_build.py [--runs 20] [--history rolled_back]

Its figures come from ``.venv/bin/python benchmarks/report_build.py`` (the defaults).
``--quick`` builds once: the same JSON, for the tests.

Goal: p95 <= 1 s for a one-gate rollout, beyond the Prometheus queries. Each gate adds
one plot: on the dev stack the demo's six-gate report took 2.1 s in its write_report
activity, its twelve range queries and the status query included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from activities.report.gather import build, read_histories
from activities.report.render import write

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"


async def once(history: WorkflowHistory, out: Path) -> tuple[float, float]:
    """Seconds to build the report, and to write it in every format."""
    started = time.perf_counter()
    facts = await read_histories(DataConverter.default, [(None, list(history.events))])
    report = await build(facts, None, history.workflow_id, prometheus=False)
    built = time.perf_counter()
    write(report, out)
    return built - started, time.perf_counter() - built


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--history", default="rolled_back")
    parser.add_argument("--quick", action="store_true", help="--runs 1")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    text = (HISTORIES / f"{args.history}.json").read_text()
    history = WorkflowHistory.from_json("rollout-benchmark", text)
    builds, writes = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.runs):
            b, w = await once(history, Path(folder) / str(i))
            builds.append(b)
            writes.append(w)
    totals = sorted(b + w for b, w in zip(builds, writes, strict=True))
    print(
        json.dumps(
            {
                "history": args.history,
                "events": len(history.events),
                "runs": args.runs,
                "build_median_s": round(statistics.median(builds), 4),
                "write_median_s": round(statistics.median(writes), 4),
                "total_p95_s": round(totals[max(0, int(len(totals) * 0.95) - 1)], 4),
                "total_max_s": round(totals[-1], 4),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
