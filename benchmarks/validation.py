"""How long a plan takes to validate, by size, and how fast an oversized one is refused.

Prints one JSON object:

- ``gates``: parse_plan seconds for plans of N threshold gates and 4 stages (default N =
  500, 1000, 2000: past the cap, so these time the refusal) and for N up to the cap.
- ``gates_uncapped``: the same N with the count caps lifted, timing the checks themselves.
- ``stages_x_gates``: plans with every stage listing every gate, up to both caps.
- ``biggest_allowed``: a plan at every cap at once (stages, gates, gates per stage, query
  length, placeholders per query, name lengths), validated from data and loaded from a
  file, with the file's size.
- ``refused``: seconds to refuse hostile input: a 5 MB version (and the length of the
  error message), 60,000 gates, a YAML alias bomb, a 1 MB file of small values, a file
  nested 100,000 levels deep.

    .venv/bin/python benchmarks/validation.py [--counts 500,1000,2000] [--repeat 3] [--limit 60]

benchmarks/README.md's figures come from ``.venv/bin/python benchmarks/validation.py`` (the
defaults). A run longer than ``--limit`` seconds is stopped and reported as ``timed_out``.
``--quick`` (counts 60 and 120, one repeat) prints the same JSON in about a second, for the
tests.

Goal: validation time grows linearly with the plan, the biggest allowed plan validates in
well under a second, and every refusal takes well under a second with a short message.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plans import PlanError, load_plan, parse_plan
from plans import text as limits

MAX_STAGES: int = limits.MAX_STAGES
MAX_GATES: int = limits.MAX_GATES
MAX_QUERY_CHARS: int = limits.MAX_QUERY_CHARS
MAX_PLACEHOLDERS: int = limits.MAX_PLACEHOLDERS
LIMIT_S = 60.0


def name(prefix: str, i: int, length: int = 8) -> str:
    """A safe name of ``length`` characters, distinct for each ``i``."""
    tail = f"-{i}"
    return prefix + "x" * max(length - len(prefix) - len(tail), 0) + tail


def threshold_query(i: int, chars: int = 0, placeholders: int = 2) -> str:
    """A PromQL query with ``placeholders`` placeholders, padded to ``chars`` characters."""
    body = f'sum(rate(http_requests_total{{server="$canary",code=~"5.."}}[1m])) + {i}'
    body += " + vector($service)" * max(placeholders - 1, 0)
    if chars > len(body):
        body += " + " + "0" * (chars - len(body) - 3)
    return body


def plan_data(
    gates: int,
    stages: int = 4,
    *,
    listed: bool = False,
    query_chars: int = 0,
    placeholders: int = 2,
    name_length: int = 8,
) -> dict[str, Any]:
    """Plan data with ``gates`` threshold gates and ``stages`` stages (weights going up)."""
    gate_names = [name("g", i, name_length) for i in range(gates)]
    plan_gates = [
        {"name": n, "query": threshold_query(i, query_chars, placeholders), "max": 1}
        for i, n in enumerate(gate_names)
    ]
    plan_stages = []
    for j in range(stages):
        stage: dict[str, Any] = {
            "name": name("s", j, name_length),
            "weight": round(100 * (j + 1) / stages),
            "bake": "10m",
            "check_every": "1m",
        }
        if listed:
            stage["gates"] = list(gate_names)
        plan_stages.append(stage)
    return {
        "service": name("svc", 0, name_length),
        "version": name("v", 0, name_length),
        "stable": name("stable", 0, name_length),
        "canary": name("canary", 0, name_length),
        "router": {"kind": "haproxy", "runtime_api": "/run/haproxy.sock", "backend": "be"},
        "metrics": {"kind": "prometheus", "url": "http://prometheus:9090"},
        "gates": plan_gates,
        "stages": plan_stages,
    }


def biggest_allowed() -> dict[str, Any]:
    return plan_data(
        MAX_GATES,
        MAX_STAGES,
        listed=True,
        query_chars=MAX_QUERY_CHARS,
        placeholders=MAX_PLACEHOLDERS,
        name_length=63,
    )


class _TimedOut(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _TimedOut


def timed(run: Callable[[], object], repeat: int) -> dict[str, Any]:
    """Best of ``repeat`` runs, whether the plan was refused, and its message's length.

    A run past ``LIMIT_S`` is stopped and reported as ``timed_out``; one that raises
    anything but PlanError is reported as a ``crash``.
    """
    best = float("inf")
    refused, message = False, 0
    for _ in range(repeat):
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
        try:
            run()
        except PlanError as error:
            refused, message = True, len(str(error).encode())
        except _TimedOut:
            return {"seconds": round(time.perf_counter() - start, 1), "timed_out": True}
        except Exception as error:  # not refused as a bad plan: the CLI would print a traceback
            return {"seconds": round(time.perf_counter() - start, 5), "crash": repr(error)[:80]}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        best = min(best, time.perf_counter() - start)
    found: dict[str, Any] = {"seconds": round(best, 5), "refused": refused}
    if refused:
        found["message_bytes"] = message
    return found


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--counts", default="500,1000,2000")
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--limit", type=float, default=60, help="seconds before a run is stopped")
    args.add_argument("--quick", action="store_true", help="counts 60,120 and one repeat")
    options = args.parse_args()
    if options.quick:
        options.counts, options.repeat = "60,120", 1
    global LIMIT_S
    LIMIT_S = options.limit
    signal.signal(signal.SIGALRM, _stop)
    counts = [int(c) for c in options.counts.split(",")]
    repeat = options.repeat
    report: dict[str, Any] = {
        "caps": {"stages": MAX_STAGES, "gates": MAX_GATES, "query_chars": MAX_QUERY_CHARS},
        "gates": {},
        "stages_x_gates": {},
    }
    within = [n for n in (10, 25, MAX_GATES) if n <= MAX_GATES]
    for n in sorted({*within, *counts}):
        data = plan_data(n)
        report["gates"][str(n)] = timed(lambda data=data: parse_plan(data), repeat)
    # The same plans with the count caps lifted: the checks themselves, linear or not.
    lifted = {"MAX_GATES": 10**9, "MAX_STAGES": 10**9}
    saved = {key: getattr(limits, key) for key in lifted}
    vars(limits).update({key: lifted[key] for key in saved})
    try:
        report["gates_uncapped"] = {
            str(n): timed(lambda n=n: parse_plan(plan_data(n)), 1) for n in counts
        }
    finally:
        vars(limits).update(saved)
    for n in within:
        data = plan_data(n, MAX_STAGES, listed=True)
        key = f"{MAX_STAGES}x{n}"
        report["stages_x_gates"][key] = timed(lambda data=data: parse_plan(data), repeat)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = biggest_allowed()
        path = write(folder / "biggest.yaml", yaml.safe_dump(data, width=10_000))
        report["biggest_allowed"] = {
            "file_bytes": path.stat().st_size,
            "json_bytes": len(json.dumps(data)),
            "parse_plan": timed(lambda: parse_plan(data), repeat),
            "load_plan": timed(lambda: load_plan(path), repeat),
        }
        base = plan_data(2)
        huge_version = {**base, "version": "v" * 5_000_000}
        many_gates = plan_data(60_000)
        bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        for level, prev in zip("bcdefghi", "abcdefgh", strict=True):
            bomb += f"{level}: &{level} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        small = "".join(f"  - {{name: g{i}, query: q, max: 1}}\n" for i in range(25_000))
        files = {
            "alias_bomb": write(folder / "bomb.yaml", bomb),
            "one_mb_of_small_values": write(folder / "small.yaml", "gates:\n" + small),
            "nested_100000_deep": write(folder / "deep.yaml", "a: " + "[" * 100_000),
        }
        refused: dict[str, Any] = {
            "version_5mb": timed(lambda: parse_plan(huge_version), repeat),
            "gates_60000": timed(lambda: parse_plan(many_gates), 1),
        }
        for key, file in files.items():
            loaded = timed(lambda f=file: load_plan(f), 1)
            refused[key] = {"file_bytes": file.stat().st_size, **loaded}
        report["refused"] = refused
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
