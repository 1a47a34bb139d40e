"""How fast a shift takes effect on each router, and what a blue-green flip costs; prints JSON.

On a dev stack of its own (or ``--dir``), for each router:

- ``shift``: from calling the shift activity's router code (``router_for(spec).set_split``)
  until a separate reader polling every 2 ms sees the new split (for HAProxy and Envoy the
  router's own report; for flagd the demo service's evaluations). Weights alternate over
  a ladder (0, 5, 10, 25, 50, 75, 100 and back) so every shift changes something.
- ``blue_green``: steady load through HAProxy (``--rps``) across ``--flips`` flips, green to
  100 and back to blue; counts every request that failed (connection errors and 5xx).

    .venv/bin/python benchmarks/shift.py [--shifts 60] [--flips 20] [--rps 100] [--dir DIR]

Goals: HAProxy and Envoy p95 <= 100 ms, flagd p95 <= its poll interval + 200 ms, and no
failed request across flips. The last line is one JSON object. benchmarks/README.md's table
comes from ``.venv/bin/python benchmarks/shift.py`` (the defaults). ``--quick`` (2 shifts a
router, 2 flips at 20 requests/s, stacks on free ports) prints the same JSON, for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

import devstack
from activities.routers import TrafficRouter, router_for
from demo import loadgen
from demo.configs import ENVOY_RUNTIME_PREFIX
from plans import EnvoyRouter, FlagdRouter, HAProxyRouter, TrafficSplit
from tests.stack.conftest import ANY_PORTS

POLL_S = 0.002
LADDER = [0, 5, 10, 25, 50, 75, 100, 75, 50, 25, 10, 5]
GOAL_MS = {"haproxy": 100.0, "envoy": 100.0}
FLAGD_SLACK_MS = 200.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def timed_shifts(
    router: TrafficRouter, seen: Callable[[TrafficSplit], bool], shifts: int
) -> dict[str, float]:
    """Milliseconds from each set_split call until ``seen(split)`` holds, as p50/p95/max."""
    samples = []
    for i in range(shifts):
        split = TrafficSplit.canary_percent(LADDER[(i + 1) % len(LADDER)])
        began = time.perf_counter()
        router.set_split("stable", "canary", split)
        while not seen(split):
            if time.perf_counter() - began > 30:
                raise RuntimeError(f"{split} never took effect")
            time.sleep(POLL_S)
        samples.append((time.perf_counter() - began) * 1000)
    return {
        "shifts": shifts,
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "max_ms": round(max(samples), 1),
    }


def haproxy(stack: devstack.StackInfo, shifts: int) -> dict[str, Any]:
    spec = HAProxyRouter(runtime_api=stack.haproxy_admin_tcp, backend=stack.haproxy_backend)
    reader = router_for(spec)
    result = timed_shifts(
        router_for(spec), lambda split: reader.get_split("stable", "canary") == split, shifts
    )
    router_for(spec).set_split("stable", "canary", TrafficSplit.canary_percent(0))
    return result | {"goal_p95_ms": GOAL_MS["haproxy"]}


def envoy(stack: devstack.StackInfo, shifts: int) -> dict[str, Any]:
    assert stack.envoy_admin is not None
    spec = EnvoyRouter(admin=stack.envoy_admin, runtime_key_prefix=ENVOY_RUNTIME_PREFIX)
    reader = router_for(spec)
    result = timed_shifts(
        router_for(spec), lambda split: reader.get_split("stable", "canary") == split, shifts
    )
    router_for(spec).set_split("stable", "canary", TrafficSplit.canary_percent(0))
    return result | {"goal_p95_ms": GOAL_MS["envoy"]}


def flagd(stack: devstack.StackInfo, shifts: int) -> dict[str, Any]:
    """A shift counts once the demo service's evaluations of its users match the new split.

    The service reloads the file between two evaluations, so one answer may mix the old
    split and the new: each weight's exact count of canary users is learnt first, from
    answers that stay the same over two polls, and a shift is seen when that count comes.
    """
    assert stack.flag_file is not None and stack.flag_key is not None
    spec = FlagdRouter(file=stack.flag_file, flag=stack.flag_key)
    router = router_for(spec)
    poll = float(stack.flag_poll_ms or 0)
    with httpx.Client(timeout=5.0) as http:

        def canary_users() -> int:
            answer = http.get(f"{stack.canary_url}split", params={"users": 500}).json()
            return int(answer["canary"])

        expected: dict[int, int] = {}
        # Each weight the shifts go to (and the one they start from).
        for weight in sorted({LADDER[i % len(LADDER)] for i in range(shifts + 1)}):
            router.set_split("stable", "canary", TrafficSplit.canary_percent(weight))
            time.sleep(3 * poll / 1000 + 0.5)
            while (count := canary_users()) != canary_users():
                time.sleep(poll / 1000)
            expected[weight] = count
        router.set_split("stable", "canary", TrafficSplit.canary_percent(LADDER[0]))
        time.sleep(3 * poll / 1000 + 0.5)
        result = timed_shifts(
            router, lambda split: canary_users() == expected[split.canary_weight], shifts
        )
    router.set_split("stable", "canary", TrafficSplit.canary_percent(0))
    return result | {"poll_ms": poll, "goal_p95_ms": poll + FLAGD_SLACK_MS}


async def blue_green(stack: devstack.StackInfo, flips: int, rps: float) -> dict[str, Any]:
    """Failed requests under steady load while green and blue swap ``flips`` times."""
    spec = HAProxyRouter(runtime_api=stack.haproxy_admin_tcp, backend=stack.haproxy_backend)
    router = router_for(spec)
    stop = asyncio.Event()
    load = asyncio.create_task(loadgen.run(stack.haproxy_url, rps, stop=stop, report_every=1e9))
    await asyncio.sleep(2)
    for i in range(flips):
        green = i % 2 == 0
        split = TrafficSplit.canary_percent(100 if green else 0)
        await asyncio.to_thread(router.set_split, "stable", "canary", split)
        await asyncio.sleep(1.0)
    await asyncio.sleep(1)
    stop.set()
    tally = await load
    failed = sum(tally.failures.values())
    failed += sum(n for (_, code), n in tally.answers.items() if code >= 500)
    await asyncio.to_thread(router.set_split, "stable", "canary", TrafficSplit.canary_percent(0))
    return {
        "flips": flips,
        "rps": rps,
        "requests": tally.total + sum(tally.failures.values()),
        "failed_requests": failed,
        "skipped_ticks": tally.skipped,
        "answers": {f"{v}/{c}": n for (v, c), n in sorted(tally.answers.items())},
    }


MEASURES: dict[str, Callable[[devstack.StackInfo, int], dict[str, Any]]] = {
    "haproxy": haproxy,
    "envoy": envoy,
    "flagd": flagd,
}


def on_stack(
    router: str,
    dir: str | None,
    run: Callable[[devstack.StackInfo], Any],
    ports: dict[str, int] | None = None,
) -> Any:
    """``run`` on the stack in ``dir``, or on a fresh one with ``router`` stopped after it."""
    if dir is not None:
        return run(devstack.load(Path(dir)))
    directory = Path(tempfile.mkdtemp(prefix=f"shift-{router}-"))
    # A stack of its own stops with it, also on SIGTERM (`timeout`) or Ctrl-C.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
        stack = cleanup.enter_context(
            devstack.running(directory, with_worker=False, router=router, ports=ports)  # type: ignore[arg-type]
        )
        return run(stack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, default=60)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument(
        "--routers", default="haproxy,envoy,flagd", help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--dir", help="an existing dev stack's folder, for one router (default: fresh stacks)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 shifts, 2 flips at 20/s, free ports"
    )
    args = parser.parse_args()
    if args.quick:
        args.shifts, args.flips, args.rps = 2, 2, 20.0
    routers: dict[str, Any] = {}
    flips: dict[str, Any] = {}
    for name in args.routers.split(","):

        def run(stack: devstack.StackInfo, name: str = name) -> None:
            routers[name] = MEASURES[name](stack, args.shifts)
            if name == "haproxy":
                flips.update(asyncio.run(blue_green(stack, args.flips, args.rps)))

        on_stack(name, args.dir, run, ANY_PORTS if args.quick else None)
    met = all(r["p95_ms"] <= r["goal_p95_ms"] for r in routers.values())
    result = {
        "routers": routers,
        "blue_green": flips,
        "goal": {"met": met and flips.get("failed_requests", 0) == 0},
        "poll_ms": POLL_S * 1000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
