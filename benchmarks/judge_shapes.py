"""The recommended judge on streams shaped unlike judge_quality.py's: does it hold there?

It prints one JSON object: per traffic shape and canary, the share of stages rolled back
and paused::

    .venv/bin/python benchmarks/judge_quality.py      # the goal table
    .venv/bin/python benchmarks/judge_shapes.py       # this: other shapes (a few minutes)

``judge_quality.py``'s generator is one model of traffic; tuning to it alone would be
tuning to its quirks. Here every stage differs from it: 15 s steps, a 15-minute bake, a
canary at a third of the stable's traffic, a gamma latency body (median about 110 ms) with
a 2% log-normal tail near 800 ms, errors at 0.4% whose rate wanders from step to step, and
a healthy canary that differs from the stable by about 8% in errors and 2% in latency.
The shapes: flat traffic (50 requests a second), rising five-fold over the stage, swinging
60% either way, low (3 a second), high (2,000 a second), and flat traffic counted in 3
coarse buckets or in 40 fine ones, or flat in steps of a minute, as long as the checks (the
first check then sees one step, the next two). The canaries: healthy, errors x2 and
latency +15% (the whole body), each from the start or from half-way through the bake, and
the tail alone twice as slow. Stages go through ``judge_quality.run_stage`` with the
recommended judge.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge_quality as quality

SEED = 20261206
STEP_S, PRE_STEPS, BAKE_S, CHECK_S = 15, 8, 900, 60
BASE_ERROR = 0.004
STABLE_SHARE = 3
SHAPES = (
    "flat",
    "rising",
    "swinging",
    "low",
    "high",
    "flat, 3 buckets",
    "flat, 40 buckets",
    "flat, minute steps",
)
MINUTE = 60  # "minute steps": a step as long as a check, so the first check has one
CANARIES: dict[str, dict[str, float]] = {
    "healthy": {},
    "errors x2": {"errors": 2.0},
    "errors x2 from half-way": {"errors": 2.0, "from": 0.5},
    "latency +15%": {"latency": 1.15},
    "latency +15% from half-way": {"latency": 1.15, "from": 0.5},
    "tail alone x2": {"tail": 2.0},
}
HEALTHY_STAGES, REGRESSED_STAGES, QUICK_STAGES = 120, 40, 2


def _traffic(shape: str, steps: int) -> np.ndarray:
    t = np.arange(steps)
    rps = {"low": 3.0, "high": 2000.0}.get(shape, 50.0)
    if shape == "rising":
        return rps * (1 + 4 * t / steps)
    if shape == "swinging":
        return rps * (1 + 0.6 * np.sin(t / 9))
    return np.full(steps, rps)


def _bounds(shape: str) -> np.ndarray:
    if shape.endswith("3 buckets"):
        return np.array([0.05, 0.2, 1.0, math.inf])
    if shape.endswith("40 buckets"):
        return np.append(np.exp(np.linspace(math.log(0.002), math.log(20), 39)), math.inf)
    return quality.BUCKETS


def stage(rng: np.random.Generator, shape: str, canary: dict[str, float]) -> quality.Streams:
    """One stage's streams for ``shape`` and a canary with ``canary``'s regression."""
    step_s = MINUTE if shape.endswith("minute steps") else STEP_S
    pre_steps = PRE_STEPS * STEP_S // step_s
    steps = pre_steps + BAKE_S // step_s
    bounds = _bounds(shape)
    traffic = _traffic(shape, steps)
    start = pre_steps + int(canary.get("from", 0.0) * (steps - pre_steps))
    streams = quality.Streams({}, {}, {}, step_s, pre_steps, CHECK_S, BAKE_S, bounds)
    for version, share in (("canary", 1), ("stable", STABLE_SHARE)):
        requests = rng.poisson(traffic * share * step_s)
        on = np.arange(steps) >= start if version == "canary" else np.zeros(steps, bool)
        own = np.exp(rng.normal(0.0, [0.08, 0.02])) if version == "canary" else np.ones(2)
        rate = BASE_ERROR * own[0] * np.exp(rng.normal(0.0, 0.3, steps))
        rate = rate * np.where(on, canary.get("errors", 1.0), 1.0)
        counts = []
        for i, n in enumerate(requests):
            body = rng.gamma(4.0, 0.03, n) * own[1] * math.exp(rng.normal(0.0, 0.03))
            tail = rng.lognormal(math.log(0.8), 0.6, n)
            if on[i]:
                body, tail = body * canary.get("latency", 1.0), tail * canary.get("tail", 1.0)
            latency = np.where(rng.random(n) < 0.02, tail, body)
            where = np.minimum(np.searchsorted(bounds, latency), len(bounds) - 1)
            counts.append(np.bincount(where, minlength=len(bounds)))
        streams.requests[version] = requests.astype(float)
        streams.errors[version] = rng.binomial(requests, np.minimum(rate, 1.0)).astype(float)
        streams.buckets[version] = np.array(counts, dtype=float)
    return streams


def run_cell(task: tuple[str, str, int, int]) -> dict[str, Any]:
    shape, canary, stages, seed = task
    rng = np.random.default_rng(seed)
    gates = quality.judges()[quality.RECOMMENDED]
    found = [quality.run_stage(gates, stage(rng, shape, CANARIES[canary])) for _ in range(stages)]
    return {
        "shape": shape,
        "canary": canary,
        "stages": stages,
        "rolled_back": round(sum(r.outcome == "rolled_back" for r in found) / stages, 4),
        "paused": round(sum(r.outcome == "paused" for r in found) / stages, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STAGES} stages a cell")
    args = parser.parse_args()
    seeds = np.random.SeedSequence(SEED).spawn(len(SHAPES) * len(CANARIES))
    tasks = []
    for index, (shape, canary) in enumerate((s, c) for s in SHAPES for c in CANARIES):
        stages = HEALTHY_STAGES if canary == "healthy" else REGRESSED_STAGES
        tasks.append(
            (
                shape,
                canary,
                QUICK_STAGES if args.quick else stages,
                int(seeds[index].generate_state(1)[0]),
            )
        )
    if args.quick:
        cells = [run_cell(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 1)) as pool:
            cells = list(pool.map(run_cell, tasks))
    print(json.dumps({"judge": quality.RECOMMENDED, "seed": SEED, "cells": cells}, indent=1))


if __name__ == "__main__":
    main()
