"""How long `rollout --help` and `rollout validate PLAN` take from start to exit.

Prints one JSON object:

- ``help_p50_ms``, ``help_p95_ms``, ``help_max_ms``: wall time of `rollout --help`, each run
  a fresh process, until it exits.
- ``validate_p50_ms``, ``validate_p95_ms``, ``validate_max_ms``: the same for
  `rollout validate PLAN` on the demo's plan (``demo/compose/plan.yaml``).
- ``help_cpu_p50_ms``, ``validate_cpu_p50_ms``: the CPU time (user and system) the process
  used, which a busy neighbour on the machine inflates far less than the wall time.
- ``runs``: runs of each; ``program``: what was run; ``goal_ms``: 200, and ``met``.

    .venv/bin/python benchmarks/cli_start.py [--runs 20]

The program is the console script beside this Python (``.venv/bin/rollout``), else
``python -m starter``. The bytecode is compiled once before the timed runs and read from a
temporary folder (``PYTHONPYCACHEPREFIX``) by each of them, as from a package that pip
installed; ``--no-bytecode`` times every run compiling the sources again, as with
``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__``. ``--quick`` runs each 3 times, for
the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "demo" / "compose" / "plan.yaml"
GOAL_MS = 200.0


def program() -> list[str]:
    """The `rollout` console script of this Python's environment, else the module."""
    script = Path(sys.executable).parent / "rollout"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "starter"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``argv`` from spawning until it exited; it must exit 0."""
    with tempfile.TemporaryFile() as errors:
        began = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = (time.perf_counter() - began) * 1000
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            errors.seek(0)
            raise SystemExit(f"{argv} exited {code}: {errors.read().decode()[-2000:]}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1000


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def measure(runs: int, bytecode: bool) -> dict[str, Any]:
    base = program()
    commands = {"help": [*base, "--help"], "validate": [*base, "validate", str(PLAN)]}
    with tempfile.TemporaryDirectory(prefix="cli-start-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        if bytecode:
            env["PYTHONPYCACHEPREFIX"] = cache
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX", None)
        for argv in commands.values():
            timed(argv, env)  # writes the bytecode (or warms the page cache)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        # Interleaved, so that a neighbour's burst of work falls on both alike.
        for _ in range(runs):
            for name, argv in commands.items():
                wall, used = timed(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
    result: dict[str, Any] = {}
    for name, values in times.items():
        result |= {f"{name}_{key}": value for key, value in quantiles(values).items()}
        result[f"{name}_cpu_p50_ms"] = round(statistics.median(cpu[name]), 1)
    result |= {
        "runs": runs,
        "program": " ".join(Path(part).name if i == 0 else part for i, part in enumerate(base)),
        "bytecode": "cached" if bytecode else "compiled each run",
        "goal_ms": GOAL_MS,
        "met": result["help_p50_ms"] <= GOAL_MS and result["validate_p50_ms"] <= GOAL_MS,
        "machine": {"cores": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command")
    parser.add_argument("--no-bytecode", action="store_true", help="compile the sources each run")
    parser.add_argument("--quick", action="store_true", help="3 runs of each, for the tests")
    args = parser.parse_args()
    runs = 3 if args.quick else max(args.runs, 10)
    print(json.dumps(measure(runs, bytecode=not args.no_bytecode)))


if __name__ == "__main__":
    main()
