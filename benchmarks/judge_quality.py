"""How often the gates roll back a healthy canary, and how fast they catch a bad one.

It prints one JSON object. benchmarks/README.md's judge table comes from (fixed seed, about 40 s on
2 cores)::

    .venv/bin/python benchmarks/judge_quality.py

``--quick`` runs every cell with a few stages in one process (a second or two): the same
JSON, for the tests, not for the numbers.

Synthetic canary/stable streams go through the same code as a rollout: the gates are
parsed from a plan (presets, defaults and validation included), each check's numbers go
through ``activities.judge.judge_gate`` exactly as Prometheus' answers would, and the
streaks and actions come from ``workflows.decisions.judge_checks``. Only Temporal and
Prometheus are left out.

The streams, per second: the canary gets Poisson(r) requests (r = 10, 100 or 1000), the
stable four times as many (the canary at 20%). Errors are bursty: a base rate of 1%, times
a Gamma(2, 0.5) factor per version and second (bursts of a few seconds), times 5 during
shared incidents that hit both versions (one every 30 minutes on average, 30 s long on
average). Latencies are heavy-tailed: a log-normal body (median 60 ms, sigma 0.5) with a
3% Pareto tail (from 150 ms, alpha 1.5), scaled per 10 s step by a load factor both
versions share and a little noise of their own, and counted in the demo service's
histogram buckets (Prometheus' defaults); percentiles are read the way
``histogram_quantile`` reads them. A stage bakes 10 minutes with a check every minute;
the regressions (errors x1.5, x2, x5, latency +10%, +30%) are there from its start.

The judge is the recommended pair of gates: ``demo-error-rate`` and ``demo-p95-latency``
as ``kind: statistical`` (98% confidence, failure_limit 2 from the presets). The same
streams also go through the relative and threshold variants of the presets, and through a
naive judge: fixed thresholds at twice the healthy error rate and 1.25 times the healthy
p95, failure_limit 1, no minimum of requests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf as _erf
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.judge import Side, judge_gate
from plans import Gate, GateOutcome, StatisticalGate, parse_plan
from plans.progress import RolloutProgress
from workflows.decisions import judge_checks

SEED = 20260515
BASE_ERROR = 0.01
STABLE_SHARE = 4
BAKE_S = 600
CHECK_S = 60
CHECKS = BAKE_S // CHECK_S
STEP_S = 10
PRE_S = 120  # data before the stage starts, so the first check's windows are full
TRAFFIC = (10, 100, 1000)
STARVED_RPS = 0.5  # below every gate's min_samples: the judge must not pass it
HEALTHY_STAGES = 700
REGRESSED_STAGES = 400
QUICK_STAGES = 3  # per cell, healthy or regressed, with --quick
BUCKETS = np.array(
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, np.inf]
)
SCENARIOS: dict[str, dict[str, float]] = {
    "healthy": {},
    "errors x1.5": {"errors": 1.5},
    "errors x2": {"errors": 2.0},
    "errors x5": {"errors": 5.0},
    "latency +10%": {"latency": 1.1},
    "latency +30%": {"latency": 1.3},
    "starved": {},
}
AT = datetime(2026, 1, 1, tzinfo=UTC)


# -- the judges: gates parsed from plans, as a rollout would have them --------------------------


def _gates(specs: list[dict[str, Any]]) -> list[Gate]:
    plan = parse_plan(
        {
            "service": "bench",
            "stable": "stable",
            "canary": "canary",
            "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "app"},
            "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
            "gates": specs,
            "stages": [{"name": "twenty", "weight": 20, "bake": "10m", "check_every": "1m"}],
        }
    )
    return list(plan.gates)


def _naive_p95() -> float:
    counts = _bucket_probabilities(np.array([1.0]))[0] * 1e9
    return _quantile(0.95, counts)


def judges() -> dict[str, list[Gate]]:
    """Each judge's gates: the error-rate gate first, the latency gate second."""
    naive_error = 'sum(rate(demo_requests_total{version="$canary",code=~"5.."}[1m]))'
    naive_error += ' / sum(rate(demo_requests_total{version="$canary"}[1m]))'
    naive_latency = (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(demo_request_duration_seconds_bucket{version="$canary"}[1m])))'
    )
    return {
        "statistical": _gates(
            [
                {"name": "error-rate", "preset": "demo-error-rate", "kind": "statistical"},
                {"name": "p95-latency", "preset": "demo-p95-latency", "kind": "statistical"},
            ]
        ),
        "relative": _gates(
            [
                {"name": "error-rate", "preset": "demo-error-rate", "kind": "relative"},
                {"name": "p95-latency", "preset": "demo-p95-latency", "kind": "relative"},
            ]
        ),
        "threshold": _gates(
            [
                {"name": "error-rate", "preset": "demo-error-rate"},
                {"name": "p95-latency", "preset": "demo-p95-latency"},
            ]
        ),
        "naive": _gates(
            [
                {"name": "error-rate", "query": naive_error, "max": 2 * BASE_ERROR},
                {"name": "p95-latency", "query": naive_latency, "max": 1.25 * _naive_p95()},
            ]
        ),
    }


# -- the synthetic streams ---------------------------------------------------------------------


def _latency_cdf(x: np.ndarray) -> np.ndarray:
    body = 0.5 * (1 + _erf((np.log(np.maximum(x, 1e-12)) - math.log(0.06)) / (0.5 * math.sqrt(2))))
    tail = np.where(x >= 0.15, 1 - (0.15 / np.maximum(x, 1e-12)) ** 1.5, 0.0)
    return 0.97 * body + 0.03 * tail


def _bucket_probabilities(scale: np.ndarray) -> np.ndarray:
    """Per row (one scale factor), the share of requests falling in each bucket."""
    upper = BUCKETS[None, :-1] / scale[:, None]
    cdf = np.concatenate([_latency_cdf(upper), np.ones((len(scale), 1))], axis=1)
    probabilities = np.diff(cdf, axis=1, prepend=0.0)
    return np.clip(probabilities, 0.0, 1.0)


def _quantile(q: float, counts: np.ndarray) -> float:
    """Prometheus' histogram_quantile over per-bucket (not cumulative) counts."""
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = int(np.searchsorted(cumulative, rank))
    if index == len(BUCKETS) - 1:
        return float(BUCKETS[-2])
    lower = 0.0 if index == 0 else float(BUCKETS[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    inside = float(counts[index])
    if inside == 0:
        return lower
    return lower + (float(BUCKETS[index]) - lower) * (rank - below) / inside


@dataclass
class Streams:
    """One stage's data: per second requests and errors, per 10 s step latency buckets."""

    requests: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    buckets: dict[str, np.ndarray]


def _incidents(rng: np.random.Generator, seconds: int) -> np.ndarray:
    on = np.zeros(seconds, dtype=bool)
    t = 0
    while t < seconds:
        t += int(rng.exponential(1800))
        if t >= seconds:
            break
        length = max(1, int(rng.exponential(30)))
        on[t : t + length] = True
        t += length
    return on


def simulate(rng: np.random.Generator, rps: float, effect: dict[str, float]) -> Streams:
    """A stage's streams for a canary with ``effect`` (errors x, latency x) at ``rps``."""
    seconds = PRE_S + BAKE_S
    shared = np.where(_incidents(rng, seconds), 5.0, 1.0)
    load = np.exp(rng.normal(0.0, 0.05, seconds // STEP_S))
    # Two deployments are never identical (hosts, caches): even a healthy canary differs
    # a little from the stable for the whole stage.
    host_errors, host_latency = np.exp(rng.normal(0.0, [0.1, 0.03]))
    streams = Streams({}, {}, {})
    for version, rate, err_x, lat_x in (
        (
            "canary",
            rps,
            effect.get("errors", 1.0) * host_errors,
            effect.get("latency", 1.0) * host_latency,
        ),
        ("stable", rps * STABLE_SHARE, 1.0, 1.0),
    ):
        requests = rng.poisson(rate, seconds)
        burst = rng.gamma(2.0, 0.5, seconds)
        p = np.minimum(BASE_ERROR * err_x * shared * burst, 1.0)
        streams.requests[version] = requests
        streams.errors[version] = rng.binomial(requests, p)
        per_step = requests.reshape(-1, STEP_S).sum(axis=1)
        scale = load * np.exp(rng.normal(0.0, 0.02, len(per_step))) * lat_x
        streams.buckets[version] = rng.multinomial(per_step, _bucket_probabilities(scale))
    return streams


def _error_side(s: Streams, version: str, end: int, gate: Gate) -> Side:
    window = int(gate.window.total_seconds())
    requests = s.requests[version][end - window : end]
    errors = s.errors[version][end - window : end]
    if not isinstance(gate, StatisticalGate):
        n, bad = float(requests.sum()), float(errors.sum())
        return Side(value=bad / n if n else math.nan, samples=n)
    step = int(gate.step.total_seconds())
    counts = requests.reshape(-1, step).sum(axis=1).astype(float)
    bad_counts = errors.reshape(-1, step).sum(axis=1)
    rates = np.divide(bad_counts, counts, out=np.full(len(counts), np.nan), where=counts > 0)
    return Side(points=tuple(rates), counts=tuple(counts), samples=float(counts.sum()))


def _latency_side(s: Streams, version: str, end: int, gate: Gate) -> Side:
    window = int(gate.window.total_seconds())
    steps = s.buckets[version][(end - window) // STEP_S : end // STEP_S]
    samples = float(steps.sum())
    if isinstance(gate, StatisticalGate) and gate.test == "mann-whitney":
        stride = int(gate.step.total_seconds()) // STEP_S
        points = tuple(
            _quantile(0.95, steps[i : i + stride].sum(axis=0)) for i in range(0, len(steps), stride)
        )
        return Side(points=points, samples=samples)
    return Side(value=_quantile(0.95, steps.sum(axis=0)), samples=samples)


def _sides(gate: Gate, s: Streams, end: int) -> tuple[Side, Side]:
    if gate.name == "error-rate":
        return _error_side(s, "canary", end, gate), _error_side(s, "stable", end, gate)
    return _latency_side(s, "canary", end, gate), _latency_side(s, "stable", end, gate)


# -- a stage, checked as the workflow checks it ------------------------------------------------


@dataclass
class StageResult:
    outcome: str  # rolled_back, paused, promoted, held
    rollback_check: int | None
    fails: list[int]  # per check, how many gates failed
    verdicts: int


def run_stage(gates: list[Gate], s: Streams) -> StageResult:
    progress = RolloutProgress()
    rollback_check: int | None = None
    paused = False
    fails: list[int] = []
    outcomes: list[GateOutcome] = []
    for check in range(1, CHECKS + 1):
        end = PRE_S + check * CHECK_S
        verdicts = [
            judge_gate(gate, *_sides(gate, s, end), query=gate.name, at=AT) for gate in gates
        ]
        outcomes = [v.outcome for v in verdicts]
        fails.append(sum(o is GateOutcome.FAIL for o in outcomes))
        actions = judge_checks(progress, gates, verdicts)
        if any(a.action == "rollback" for a in actions):
            rollback_check = check
            break
        paused = paused or any(a.action == "pause" for a in actions)
    if rollback_check is not None:
        outcome = "rolled_back"
    elif paused:
        outcome = "paused"
    elif all(o is GateOutcome.PASS for o in outcomes):
        outcome = "promoted"
    else:
        outcome = "held"
    return StageResult(outcome, rollback_check, fails, len(fails) * len(gates))


# -- the cells of the table -----------------------------------------------------------------------


def run_cell(task: tuple[str, float, int, int]) -> dict[str, Any]:
    """Every judge over ``stages`` stages of one scenario at one traffic level."""
    scenario, rps, stages, seed = task
    rng = np.random.default_rng(seed)
    all_judges = judges()
    results: dict[str, list[StageResult]] = {name: [] for name in all_judges}
    for _ in range(stages):
        streams = simulate(rng, rps, SCENARIOS[scenario])
        for name, gates in all_judges.items():
            results[name].append(run_stage(gates, streams))
    return {"scenario": scenario, "rps": rps, "results": results}


def _summary(results: list[StageResult]) -> dict[str, Any]:
    n = len(results)
    caught = [r.rollback_check for r in results if r.rollback_check is not None]
    share = {o: sum(r.outcome == o for r in results) / n for o in ("rolled_back", "paused")}
    return {
        "stages": n,
        "rolled_back": round(share["rolled_back"], 4),
        "within_5_checks": round(sum(c <= 5 for c in caught) / n, 4),
        "median_checks_to_detect": statistics.median(caught) if caught else None,
        "paused": round(share["paused"], 4),
        "promoted": round(sum(r.outcome == "promoted" for r in results) / n, 4),
    }


def _looks(results: list[StageResult]) -> dict[str, float]:
    """What ten looks per stage do to healthy stages: with failure_limit 1, and as configured."""
    checks = sum(len(r.fails) for r in results)
    failing_checks = sum(sum(f > 0 for f in r.fails) for r in results)
    any_fail = sum(any(r.fails) for r in results)
    return {
        "per_check_fail_rate": round(failing_checks / checks, 5),
        "stage_rollback_if_failure_limit_1": round(any_fail / len(results), 4),
        "stage_rollback_as_configured": round(
            sum(r.outcome == "rolled_back" for r in results) / len(results), 4
        ),
    }


def _tasks(healthy: int, regressed: int) -> Iterator[tuple[str, float, int, int]]:
    seeds = np.random.SeedSequence(SEED).spawn(len(SCENARIOS) * len(TRAFFIC))
    index = 0
    for scenario in SCENARIOS:
        for rps in TRAFFIC if scenario != "starved" else (STARVED_RPS,):
            stages = healthy if scenario == "healthy" else regressed
            yield scenario, rps, stages, int(seeds[index].generate_state(1)[0])
            index += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_STAGES} stages a cell, in this process"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    healthy_stages, regressed_stages = (
        (QUICK_STAGES, QUICK_STAGES) if args.quick else (HEALTHY_STAGES, REGRESSED_STAGES)
    )
    tasks = list(_tasks(healthy_stages, regressed_stages))
    if args.quick:
        cells = [run_cell(task) for task in tasks]
    else:
        workers = min(len(tasks), os.cpu_count() or 1)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            cells = list(pool.map(run_cell, tasks))
    names = list(judges())
    detail: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    healthy: dict[str, list[StageResult]] = {name: [] for name in names}
    for cell in cells:
        for name in names:
            row = {"scenario": cell["scenario"], "rps": cell["rps"]}
            detail[name].append(row | _summary(cell["results"][name]))
            if cell["scenario"] == "healthy":
                healthy[name].extend(cell["results"][name])

    def headline(name: str) -> dict[str, Any]:
        x2 = next(
            row for row in detail[name] if row["scenario"] == "errors x2" and row["rps"] == 100
        )
        rolled = sum(r.outcome == "rolled_back" for r in healthy[name])
        stages = len(healthy[name])
        return {
            "false_rollback_rate": round(rolled / stages, 4),
            # Clopper-Pearson: what the rate could still be, given this many stages.
            "false_rollback_rate_95_upper": round(
                float(beta.ppf(0.95, rolled + 1, stages - rolled)), 4
            ),
            "detect_x2_within_5_checks_100rps": x2["within_5_checks"],
        }

    report = {
        **headline("statistical"),
        "judge": "statistical: demo-error-rate (two-proportion) + demo-p95-latency"
        " (mann-whitney), 98% confidence, failure_limit 2",
        "naive": headline("naive")
        | {"judge": "threshold: error rate <= 2%, p95 <= 1.25x healthy, failure_limit 1"},
        "by_kind": {name: headline(name) for name in ("threshold", "relative", "statistical")},
        "repeated_looks": {name: _looks(healthy[name]) for name in names},
        "settings": {
            "seed": SEED,
            "healthy_stages_per_traffic_level": healthy_stages,
            "regressed_stages_per_cell": regressed_stages,
            "checks_per_stage": CHECKS,
            "check_every_s": CHECK_S,
            "traffic_rps_canary": list(TRAFFIC),
            "stable_traffic_multiple": STABLE_SHARE,
            "base_error_rate": BASE_ERROR,
        },
        "detail": detail,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
