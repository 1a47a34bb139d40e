"""How often the gates roll back a healthy canary, and how fast they catch a bad one.

It prints one JSON object. benchmarks/README.md's judge table comes from (fixed seed, a few
minutes on 2 cores)::

    .venv/bin/python benchmarks/judge_quality.py

``--quick`` runs every cell with a few stages in one process (a second or two): the same
JSON, for the tests, not for the numbers.

Synthetic canary/stable streams go through the same code as a rollout: the gates are
parsed from a plan (presets, defaults and validation included), each check's numbers go
through ``activities.judge.judge_gate`` exactly as Prometheus' answers would, and the
streaks and actions come from ``workflows.rollout.decisions.judge_checks``. Only Temporal and
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
as ``kind: sequential`` (98% confidence at every look, failure_limit 1 from the presets):
the rate test on each 10 s step's counts since the stage began, the latency test on each
step's bucket counts, each check told how much of the stage's span (the bake and one check
more) has passed, as the workflow tells it. The same streams also go through the
statistical, relative and threshold variants of the presets, and through a naive judge:
fixed thresholds at twice the healthy error rate and 1.25 times the healthy p95,
failure_limit 1, no minimum of requests. Each row's ``oracle`` is the share of stages an
oracle rolls back: it knows the generator (the latency shape, so it fits the scale to the
bake's buckets by maximum likelihood; errors as a rate), looks once at the stage's end,
and rolls back as many healthy stages at that traffic level as the recommended judge did
(at least one).

``--streams FILE`` judges stages given from outside instead (JSON Lines, one stage a line;
the contract is in docs/judging.md) with the recommended judge, checked every
``check_every_s`` from the stage's start, and prints one JSON line per stage:
``{"id", "outcome", "at_check", "reason"}``. Every line is checked first
(benchmarks/_streams_input.py): a malformed one is named on stderr with what to fix, the
others are judged, and the run exits 1.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf as _erf
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.judge import Side, judge_gate
from benchmarks._streams_input import VERSIONS, Stage, read_stages
from plans import Gate, GateOutcome, SequentialGate, StatisticalGate, parse_plan
from plans.runtime.progress import RolloutProgress
from workflows.rollout.decisions import judge_checks

SEED = 20260515
RECOMMENDED = "sequential"  # the judge docs/judging.md recommends
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
        "sequential": _gates(
            [
                {"name": "error-rate", "preset": "demo-error-rate", "kind": "sequential"},
                {"name": "p95-latency", "preset": "demo-p95-latency", "kind": "sequential"},
            ]
        ),
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


def _quantile(q: float, counts: np.ndarray, bounds: np.ndarray = BUCKETS) -> float:
    """Prometheus' histogram_quantile over per-bucket (not cumulative) counts."""
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    index = int(np.searchsorted(cumulative, rank))
    if index == len(bounds) - 1:
        return float(bounds[-2])
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    below = 0.0 if index == 0 else float(cumulative[index - 1])
    inside = float(counts[index])
    if inside == 0:
        return lower
    return lower + (float(bounds[index]) - lower) * (rank - below) / inside


@dataclass
class Streams:
    """One stage's data, per step of ``step_s`` seconds: requests, errors, latency buckets.

    The first ``pre_steps`` steps come before the stage starts (so the first check's windows
    are full); ``bounds`` are the buckets' upper bounds, the last +Inf.
    """

    requests: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    buckets: dict[str, np.ndarray]
    step_s: int = STEP_S
    pre_steps: int = PRE_S // STEP_S
    check_every_s: int = CHECK_S
    bake_s: int = BAKE_S
    bounds: np.ndarray = field(default_factory=lambda: BUCKETS)


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
        errors = rng.binomial(requests, p)
        per_step = requests.reshape(-1, STEP_S).sum(axis=1)
        streams.requests[version] = per_step
        streams.errors[version] = errors.reshape(-1, STEP_S).sum(axis=1)
        scale = load * np.exp(rng.normal(0.0, 0.02, len(per_step))) * lat_x
        streams.buckets[version] = rng.multinomial(per_step, _bucket_probabilities(scale))
    return streams


def _steps_of(s: Streams, seconds: float) -> int:
    return max(1, int(seconds) // s.step_s)


def _error_side(s: Streams, version: str, end: int, gate: Gate) -> Side:
    """One version's error data as the gate's queries would read it, ``end`` steps in."""
    if isinstance(gate, SequentialGate):
        start = s.pre_steps
        window = _steps_of(s, gate.window.total_seconds())
        counts = s.requests[version][start:end].astype(float)
        bad = s.errors[version][start:end]
        rates = np.divide(bad, counts, out=np.full(len(counts), np.nan), where=counts > 0)
        return Side(
            points=tuple(rates), counts=tuple(counts), samples=float(counts[-window:].sum())
        )
    window = _steps_of(s, gate.window.total_seconds())
    requests = s.requests[version][end - window : end]
    errors = s.errors[version][end - window : end]
    if not isinstance(gate, StatisticalGate):
        n, bad_n = float(requests.sum()), float(errors.sum())
        return Side(value=bad_n / n if n else math.nan, samples=n)
    stride = _steps_of(s, gate.step.total_seconds())
    usable = len(requests) // stride * stride
    counts = requests[-usable:].reshape(-1, stride).sum(axis=1).astype(float)
    bad_counts = errors[-usable:].reshape(-1, stride).sum(axis=1)
    rates = np.divide(bad_counts, counts, out=np.full(len(counts), np.nan), where=counts > 0)
    return Side(points=tuple(rates), counts=tuple(counts), samples=float(counts.sum()))


def _latency_side(s: Streams, version: str, end: int, gate: Gate) -> Side:
    if isinstance(gate, SequentialGate):
        steps = s.buckets[version][s.pre_steps : end]
        window = _steps_of(s, gate.window.total_seconds())
        return Side(
            bounds=tuple(float(b) for b in s.bounds),
            histogram=tuple(tuple(float(c) for c in row) for row in steps),
            samples=float(steps[-window:].sum()),
        )
    window = _steps_of(s, gate.window.total_seconds())
    steps = s.buckets[version][end - window : end]
    samples = float(steps.sum())
    if isinstance(gate, StatisticalGate) and gate.test == "mann-whitney":
        stride = _steps_of(s, gate.step.total_seconds())
        points = tuple(
            _quantile(0.95, steps[i : i + stride].sum(axis=0), s.bounds)
            for i in range(0, len(steps), stride)
        )
        return Side(points=points, samples=samples)
    return Side(value=_quantile(0.95, steps.sum(axis=0), s.bounds), samples=samples)


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
    at_check: int | None = None  # the rollback's check, else the first pause's
    reason: str = ""


def run_stage(gates: list[Gate], s: Streams) -> StageResult:
    """Check the stage every ``check_every_s`` from its start, as the workflow would."""
    progress = RolloutProgress()
    rollback_check: int | None = None
    paused_at: int | None = None
    reason = ""
    fails: list[int] = []
    verdicts = []
    for check in range(1, s.bake_s // s.check_every_s + 1):
        end = s.pre_steps + check * s.check_every_s // s.step_s
        # As the workflow asks: the bake and one check more is the test's planned span.
        elapsed = check * s.check_every_s / (s.bake_s + s.check_every_s)
        verdicts = [
            judge_gate(gate, *_sides(gate, s, end), query=gate.name, at=AT, elapsed=elapsed)
            for gate in gates
        ]
        fails.append(sum(v.outcome is GateOutcome.FAIL for v in verdicts))
        actions = judge_checks(progress, gates, verdicts)
        if any(a.action == "rollback" for a in actions):
            rollback_check, reason = check, actions[0].reason
            break
        pause = next((a for a in actions if a.action == "pause"), None)
        if pause is not None and paused_at is None:
            paused_at, reason = check, pause.reason
    outcomes = [v.outcome for v in verdicts]
    if rollback_check is not None:
        outcome = "rolled_back"
    elif paused_at is not None:
        outcome = "paused"
    elif all(o is GateOutcome.PASS for o in outcomes):
        outcome, reason = "promoted", "; ".join(f"{v.gate}: {v.reason}" for v in verdicts)
    else:
        outcome = "held"
        reason = "; ".join(
            f"{v.gate}: {v.reason}" for v in verdicts if v.outcome is not GateOutcome.PASS
        )
    at_check = rollback_check if rollback_check is not None else paused_at
    return StageResult(outcome, rollback_check, fails, len(fails) * len(gates), at_check, reason)


# -- the cells of the table -----------------------------------------------------------------------


def run_cell(task: tuple[str, float, int, int]) -> dict[str, Any]:
    """Every judge over ``stages`` stages of one scenario at one traffic level."""
    scenario, rps, stages, seed = task
    rng = np.random.default_rng(seed)
    all_judges = judges()
    results: dict[str, list[StageResult]] = {name: [] for name in all_judges}
    oracle: list[tuple[float, float]] = []
    for _ in range(stages):
        streams = simulate(rng, rps, SCENARIOS[scenario])
        for name, gates in all_judges.items():
            results[name].append(run_stage(gates, streams))
        oracle.append(oracle_statistics(streams))
    return {"scenario": scenario, "rps": rps, "results": results, "oracle": oracle}


# -- the oracle: knows the generator, tests once at the stage's end ------------------------------

_GRID = np.linspace(-0.4, 0.6, 501)
_GRID_LOG_P = np.log(np.maximum(_bucket_probabilities(np.exp(_GRID)), 1e-300))


def _log_scale(counts: np.ndarray) -> float:
    """The latency scale (log) that best explains these bucket counts, the shape known."""
    return float(_GRID[int(np.argmax(_GRID_LOG_P @ counts))])


def oracle_statistics(s: Streams) -> tuple[float, float]:
    """At the stage's end: the log error-rate ratio, and the log latency scale ratio.

    The oracle knows the generator: the latency distribution's shape (so it fits the one
    unknown, the scale, to all the bake's buckets by maximum likelihood) and that errors
    are a rate times requests. It looks once, with the whole bake's data.
    """
    bake = slice(s.pre_steps, None)
    rates = [
        math.log((s.errors[v][bake].sum() + 0.5) / (s.requests[v][bake].sum() + 1))
        for v in ("canary", "stable")
    ]
    scales = [_log_scale(s.buckets[v][bake].sum(axis=0)) for v in ("canary", "stable")]
    return rates[0] - rates[1], scales[0] - scales[1]


def oracle_rates(
    cells: list[dict[str, Any]], false_positive: dict[float, float]
) -> dict[Any, float]:
    """Per (scenario, rps), how often the oracle rolls back, at ``false_positive[rps]``.

    Its threshold is the healthy stages' statistic at that traffic level, at the quantile
    that rolls back that share of them.
    """
    healthy = {c["rps"]: np.array(c["oracle"]) for c in cells if c["scenario"] == "healthy"}
    found: dict[Any, float] = {}
    for cell in cells:
        rps, scenario = cell["rps"], cell["scenario"]
        if rps not in healthy or scenario == "starved":
            continue
        which = 1 if scenario.startswith("latency") else 0
        reference = healthy[rps][:, which]
        share = max(false_positive[rps], 1 / len(reference))
        threshold = float(np.quantile(reference, 1 - share))
        stats = np.array(cell["oracle"])[:, which]
        found[(scenario, rps)] = round(float((stats > threshold).mean()), 4)
    return found


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


# -- stages given from outside: --streams FILE ----------------------------------------------------


def streams_of(stage: Stage) -> Streams:
    """A checked stage of the ``--streams`` contract as the judge's streams."""
    bounds = np.array(stage.bounds)
    found = Streams(
        {}, {}, {}, stage.step_s, stage.pre_steps, stage.check_every_s, stage.bake_s, bounds
    )
    for version in VERSIONS:
        found.requests[version] = np.array(stage.requests[version], dtype=float)
        found.errors[version] = np.array(stage.errors[version], dtype=float)
        found.buckets[version] = np.array(stage.latency_counts[version], dtype=float)
    return found


def judge_streams(path: str) -> None:
    """Judge every stage of a JSON Lines file with the recommended judge; one line out each.

    A FILE that cannot be read is a usage error (exit 2, as argparse's). Malformed stages
    are named first, each problem as ``FILE:LINE: message`` on stderr; the others are
    judged, and the run ends with exit 1 and how many were left out.
    """
    try:
        read = read_stages(path)
    except OSError as error:
        usage = f"{Path(sys.argv[0]).name}: error: argument --streams: cannot read {path}"
        print(f"{usage}: {error.strerror or error}", file=sys.stderr)
        sys.exit(2)
    for problem in read.problems:
        print(problem, file=sys.stderr, flush=True)
    gates = judges()[RECOMMENDED]
    for stage in read.stages:
        result = run_stage(gates, streams_of(stage))
        out = {
            "id": stage.id,
            "outcome": result.outcome,
            "at_check": result.at_check,
            "reason": result.reason,
        }
        print(json.dumps(out), flush=True)
    if read.malformed:
        total = read.malformed + len(read.stages)
        sys.exit(f"{path}: {read.malformed} of {total} stage(s) malformed and not judged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_STAGES} stages a cell, in this process"
    )
    parser.add_argument(
        "--streams",
        metavar="FILE",
        help="judge the stages in FILE (JSON Lines) with the recommended judge instead",
    )
    args = parser.parse_args()
    if args.streams:
        judge_streams(args.streams)
        return
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
    # The oracle rolls back as many healthy stages as the recommended judge did (at
    # least one), traffic level by traffic level.
    false_positive = {
        c["rps"]: _summary(c["results"][RECOMMENDED])["rolled_back"]
        for c in cells
        if c["scenario"] == "healthy"
    }
    oracle = oracle_rates(cells, false_positive)
    for cell in cells:
        for name in names:
            row = {"scenario": cell["scenario"], "rps": cell["rps"]}
            row |= _summary(cell["results"][name])
            row["oracle"] = oracle.get((cell["scenario"], cell["rps"]))
            detail[name].append(row)
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
        **headline(RECOMMENDED),
        "recommended": RECOMMENDED,
        "judge": "sequential: demo-error-rate (rate) + demo-p95-latency (latency, from the"
        " histogram's buckets), 98% confidence at every look (the stage's span known),"
        " failure_limit 1",
        "naive": headline("naive")
        | {"judge": "threshold: error rate <= 2%, p95 <= 1.25x healthy, failure_limit 1"},
        "by_kind": {
            name: headline(name) for name in ("threshold", "relative", "statistical", RECOMMENDED)
        },
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
            "oracle": "knows the generator; tests once at the stage's end with the whole bake;"
            " its threshold rolls back as many healthy stages at that traffic level as the"
            " recommended judge (at least one)",
        },
        "detail": detail,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
