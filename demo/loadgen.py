"""A steady load on the demo app, so metric gates always have traffic to judge.

Run ``python -m demo.loadgen --url http://127.0.0.1:8080/ --rps 40``; it runs until
killed, or for ``--duration`` seconds, and prints a summary line every ``--report``
seconds (answers by version and status code).

With ``--users N`` each request carries ``X-User-Id: user-K`` for a K drawn from 0 to N-1,
so an app that splits users by a feature flag sees a steady population of them.

With ``--tasks-port`` it also serves the app's own task outcomes per version as JSON, the
kind of business endpoint a ``web`` metric source reads (``demo.tasks``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from demo.tasks import TaskLog, serve_tasks


@dataclass
class Tally:
    """What the load generator saw: answers by (version, code), failures, skipped ticks."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    tasks: TaskLog = field(default_factory=TaskLog)

    @property
    def total(self) -> int:
        return sum(self.answers.values())

    def line(self) -> str:
        """One summary line, like ``sent=400 stable/200=380 canary/500=20 skipped=0``."""
        parts = [f"{v}/{c}={n}" for (v, c), n in sorted(self.answers.items())]
        parts += [f"{kind}={n}" for kind, n in sorted(self.failures.items())]
        return f"answered={self.total} {' '.join(parts)} skipped={self.skipped}".strip()


async def _one(client: httpx.AsyncClient, url: str, tally: Tally, users: int = 0) -> None:
    headers = {"X-User-Id": f"user-{random.randrange(users)}"} if users else None
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        # The proxy may be restarting; count the failure and keep the pace.
        tally.failures[type(error).__name__] += 1
        return
    version = response.headers.get("X-Version", "unknown")
    tally.answers[(version, response.status_code)] += 1
    tally.tasks.add(version, response.status_code < 500)


async def run(
    url: str,
    rps: float,
    *,
    duration: float | None = None,
    concurrency: int = 16,
    report_every: float = 10.0,
    stop: asyncio.Event | None = None,
    tally: Tally | None = None,
    users: int = 0,
) -> Tally:
    """Send GET url at ``rps`` until ``duration`` passes or ``stop`` is set; return the tally.

    With ``users`` each request names one of that many users (``X-User-Id``).
    """
    stop = stop or asyncio.Event()
    tally = tally or Tally()
    interval = 1.0 / rps
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    in_flight: set[asyncio.Task[None]] = set()
    began = time.monotonic()
    next_tick, next_report = began, began + report_every
    async with httpx.AsyncClient(timeout=5.0, limits=limits) as client:
        while not stop.is_set() and (duration is None or time.monotonic() - began < duration):
            if len(in_flight) >= concurrency:
                # A slow backend must not pile up requests without bound: drop this tick.
                tally.skipped += 1
            else:
                task = asyncio.create_task(_one(client, url, tally, users))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            now = time.monotonic()
            if now >= next_report:
                print(tally.line(), flush=True)
                next_report = now + report_every
            # Pace from a fixed schedule, so the rate holds even when a tick runs late.
            next_tick = max(next_tick + interval, now - interval)
            await asyncio.sleep(max(0.0, next_tick - now))
        if in_flight:
            await asyncio.wait(in_flight, timeout=5.0)
    return tally


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"loadgen: {args.rps:g} rps to {args.url}", flush=True)
    tally = Tally()
    server = None
    if args.tasks_port is not None:
        server = serve_tasks(tally.tasks, args.tasks_port, args.tasks_host)
        print(f"task outcomes on http://{args.tasks_host}:{server.server_port}/tasks", flush=True)
    tally = await run(
        args.url,
        args.rps,
        duration=args.duration,
        concurrency=args.concurrency,
        report_every=args.report,
        stop=stop,
        tally=tally,
        users=args.users,
    )
    if server is not None:
        server.shutdown()
        server.server_close()
    print(f"final {tally.line()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command line entry: ``python -m demo.loadgen --url URL --rps 40 [--duration S]``."""
    parser = argparse.ArgumentParser(prog="python -m demo.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rps", type=float, default=40.0)
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: forever")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--users", type=int, default=0, help="send X-User-Id of one of this many users"
    )
    parser.add_argument("--report", type=float, default=10.0, help="seconds between summaries")
    parser.add_argument(
        "--tasks-port", type=int, default=None, help="serve GET /tasks on this port"
    )
    parser.add_argument(
        "--tasks-host",
        default="127.0.0.1",
        help="the address to serve it on (a container: 0.0.0.0)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.rps <= 1000:
        parser.error("--rps: use a rate above 0 and at most 1000")
    if args.users < 0:
        parser.error("--users: use 0 (no user ids) or more")
    if args.concurrency < 1:
        parser.error("--concurrency: use 1 or more")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
