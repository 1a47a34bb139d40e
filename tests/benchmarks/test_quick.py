"""Every benchmark's quick mode runs and prints what its full run would: a benchmark that a
change broke fails here, not months later when someone wants its numbers again.

Each test runs ``benchmarks/NAME.py --quick`` as a subprocess with the project's Python and
checks the JSON it prints: its keys, and values that make sense (not just exit 0). The
benchmarks that need real servers start them as they always do (a dev stack of their own
on free ports, a Prometheus); every process a benchmark starts carries a marker in its
environment, and the test fails if any of them outlives the benchmark (and stops it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.stack.conftest import require_alertmanager, require_stack

ROOT = Path(__file__).resolve().parents[2]
MARKER = "ROLLOUT_BENCH_QUICK_RUN"


def started_by(run: str) -> list[psutil.Process]:
    """Live processes whose environment carries the marker of ``run``."""
    found = []
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if process.environ().get(MARKER) == run and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def stop(processes: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL what is still alive after 10 s, by pid."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object the output ends with (the SDK's core may log lines before it)."""
    decoder = json.JSONDecoder()
    starts = [0] if stdout.startswith("{") else []
    starts += [i + 1 for i, c in enumerate(stdout) if c == "\n" and stdout[i + 1 : i + 2] == "{"]
    for start in starts:
        with contextlib.suppress(json.JSONDecodeError):
            value, end = decoder.raw_decode(stdout, start)
            if isinstance(value, dict) and not stdout[end:].strip():
                return value
    raise AssertionError(f"no JSON object ends the output:\n{stdout[-3000:]}")


def quick(
    name: str,
    folder: Path,
    *args: str,
    timeout: float = 40,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``benchmarks/NAME.py --quick`` and return the JSON it printed.

    Temporary folders (dev stacks included) go under ``folder``. A run past ``timeout`` is
    sent SIGTERM, so that it stops what it started (it has 45 s), and fails the test: the
    test's own timeout must leave that time, and a minute more.
    """
    run = uuid.uuid4().hex
    argv = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", *args]
    environment = {**os.environ, "TMPDIR": str(folder), MARKER: run, **(env or {})}
    began = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                stdout, stderr = process.communicate(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            pytest.fail(f"{name} --quick ran past {timeout:g}s:\n{stderr[-3000:]}")
    finally:
        left = started_by(run)
        stop(left)
    assert not left, f"{name} --quick left running: {[p.pid for p in left]}"
    assert process.returncode == 0, f"{name} --quick exited {process.returncode}:\n{stderr[-3000:]}"
    print(f"{name} --quick: {time.monotonic() - began:.1f}s")
    return last_json(stdout)


@pytest.fixture
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short: a dev stack's HAProxy socket lives under it, and its path must fit sun_path.
    return tmp_path_factory.mktemp("q")


def share(value: Any) -> bool:
    return isinstance(value, int | float) and 0 <= value <= 1


def test_every_benchmark_has_a_quick_mode_tested_here() -> None:
    """A new benchmark gets a ``--quick`` and a test below, named after it."""
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert scripts - tested == set(), "benchmarks without a quick test here"
    for name in scripts:
        assert "--quick" in (ROOT / "benchmarks" / f"{name}.py").read_text(), name


# -- no server, or the time-skipping test server ----------------------------------------------


def test_judge_quality(folder: Path) -> None:
    out = quick("judge_quality", folder)
    judges = set(out["detail"])
    assert judges >= {"sequential", "statistical", "relative", "threshold", "naive"}
    assert out["recommended"] == "sequential"
    assert set(out) >= {"false_rollback_rate", "detect_x2_within_5_checks_100rps", "naive"}
    assert set(out["by_kind"]) >= {"threshold", "relative", "statistical", "sequential"}
    assert set(out["repeated_looks"]) == judges
    assert share(out["false_rollback_rate"]) and share(out["false_rollback_rate_95_upper"])
    assert out["settings"]["checks_per_stage"] == 10
    cells = {(row["scenario"], row["rps"]) for row in out["detail"]["statistical"]}
    assert len(cells) >= 19 and ("starved", 0.5) in cells
    for name in judges:
        rows = {(row["scenario"], row["rps"]): row for row in out["detail"][name]}
        assert set(rows) == cells, name
        for row in rows.values():
            assert row["stages"] >= 1
            assert all(share(row[key]) for key in ("rolled_back", "paused", "promoted"))
            assert row["rolled_back"] + row["paused"] + row["promoted"] <= 1 + 1e-9
            # The oracle's detection rate, in every cell but the starved one.
            assert (row["oracle"] is None) == (row["scenario"] == "starved"), row
            assert row["oracle"] is None or share(row["oracle"])
        # A starved canary is never passed nor rolled back by the gated judges.
        if name != "naive":
            assert rows[("starved", 0.5)]["paused"] == 1.0, name
    # The recommended judge catches a five-fold error rate and +30% latency at any traffic.
    recommended = {(row["scenario"], row["rps"]): row for row in out["detail"]["sequential"]}
    statistical = {(row["scenario"], row["rps"]): row for row in out["detail"]["statistical"]}
    for rps in (10, 100, 1000):
        assert recommended[("errors x5", rps)]["rolled_back"] == 1.0
        assert recommended[("latency +30%", rps)]["rolled_back"] == 1.0
        assert statistical[("errors x5", rps)]["rolled_back"] == 1.0
        assert statistical[("healthy", rps)]["rolled_back"] == 0.0


def test_judge_shapes(folder: Path) -> None:
    out = quick("judge_shapes", folder)
    assert out["judge"] == "sequential"
    cells = {(c["shape"], c["canary"]): c for c in out["cells"]}
    assert len(cells) == 8 * 6
    assert all(share(c["rolled_back"]) and share(c["paused"]) for c in cells.values())
    # Even two stages a cell show the plain cases: a body +15% slower is caught at 50 a
    # second; a healthy canary at flat traffic is not rolled back, in steps of a minute too.
    assert cells[("flat", "latency +15%")]["rolled_back"] == 1.0
    assert cells[("flat", "healthy")]["rolled_back"] == 0.0
    assert cells[("flat, minute steps", "healthy")]["rolled_back"] == 0.0


def test_validation(folder: Path) -> None:
    out = quick("validation", folder)
    caps = out["caps"]
    assert set(out) == {
        "caps", "gates", "gates_uncapped", "stages_x_gates", "biggest_allowed", "refused"
    }  # fmt: skip
    for n, timed in out["gates"].items():
        assert timed["refused"] == (int(n) > caps["gates"]), n
        assert 0 <= timed["seconds"] < 10
    assert out["gates_uncapped"] and not any(t["refused"] for t in out["gates_uncapped"].values())
    assert not any(t["refused"] for t in out["stages_x_gates"].values())
    biggest = out["biggest_allowed"]
    assert biggest["file_bytes"] > 100_000
    assert not biggest["parse_plan"]["refused"] and not biggest["load_plan"]["refused"]
    assert set(out["refused"]) == {
        "version_5mb", "gates_60000", "alias_bomb", "one_mb_of_small_values", "nested_100000_deep"
    }  # fmt: skip
    for key, refused in out["refused"].items():
        assert refused["refused"], key
        assert 0 < refused["message_bytes"] < 1000, key
        assert refused["seconds"] < 10, key


def test_history(folder: Path) -> None:
    out = quick("history", folder)
    assert out["check_every"] == "6h" and out["checks_per_run"] == 10
    assert out["checks"] == 28
    # 28 checks, a new run every 10: three runs, none much past its share.
    assert out["runs"] == 3
    assert out["events_total"] > out["checks"]
    assert 3 < out["events_per_check"] < 20
    assert out["max_events_per_run"] < out["events_total"]
    assert out["wall_s"] >= 0 and out["ms_per_check"] > 0


def test_report_build(folder: Path) -> None:
    out = quick("report_build", folder)
    assert out["runs"] == 1 and out["events"] > 10
    assert 0 < out["build_median_s"] < 30 and 0 < out["write_median_s"] < 30
    assert out["total_max_s"] >= out["total_p95_s"] > 0


def test_cli_start(folder: Path) -> None:
    out = quick("cli_start", folder)
    assert out["runs"] == 3 and out["goal_ms"] == 200.0 and isinstance(out["met"], bool)
    assert out["program"] and out["bytecode"] == "cached"
    for name in ("help", "validate"):
        p50, p95, most = (out[f"{name}_{q}_ms"] for q in ("p50", "p95", "max"))
        assert 0 < p50 <= p95 <= most < 30_000, (name, out)
        assert 0 < out[f"{name}_cpu_p50_ms"] < 30_000, (name, out)


def test_rebuild_cost(folder: Path) -> None:
    out = quick("rebuild_cost", folder, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert out["rebuilds"] == 3
    assert out["history"].startswith("recorded now")
    assert out["events"] > 50
    assert 0 < out["cpu_ms_per_rebuild"] < 10_000 and out["wall_ms_per_rebuild"] > 0
    assert out["bytecode"] == "not written"


# -- real servers: Prometheus, or a dev stack of the benchmark's own ------------------------------


@pytest.fixture
def servers() -> None:
    """The real stack's servers: Temporal's dev server, HAProxy, Prometheus."""
    require_stack()


@pytest.fixture
def alert_servers(servers: None) -> None:
    """The real stack's servers and Alertmanager."""
    require_alertmanager()


@pytest.mark.integration
def test_prometheus_query(folder: Path, servers: None) -> None:
    out = quick("prometheus_query", folder)
    assert out["times"] == 20 and "prometheus_http_requests_total" in out["query"]
    assert {"provider", "requests_session"} <= set(out["clients"])
    for name, measured in out["clients"].items():
        assert len(measured["runs"]) == 2, name
        assert 0 < measured["cpu_ms_per_query"] < 1000, name
        assert 0 < measured["wall_ms_per_query"] < 10_000, name
        assert measured["cpu_ms_per_query"] == min(r["cpu_ms_per_query"] for r in measured["runs"])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_detection(folder: Path, servers: None) -> None:
    out = quick("detection", folder, timeout=150)
    assert len(out["runs"]) == 1
    run = out["runs"][0]
    assert run["rolled_back"] and run["state"] == "rolled_back", run
    assert "error-rate" in run["reason"]
    assert 0 < run["fault_to_restore_s"] < 60
    assert (
        out["fault_to_restore_s"] == out["median_fault_to_restore_s"] == run["fault_to_restore_s"]
    )
    assert out["bound_s"] == 7.0 and isinstance(out["within_bound"], bool)
    assert out["settings"]["canary_weight"] == 20 and out["settings"]["failure_limit"] == 2


def latencies(out: dict[str, Any], name: str, limit_ms: float) -> None:
    """``name``'s p50 <= p95 <= max, each above 0 and below ``limit_ms``."""
    p50, p95, most = (out[f"{name}_{q}_ms"] for q in ("p50", "p95", "max"))
    assert 0 < p50 <= p95 <= most < limit_ms, (name, p50, p95, most)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reaction(folder: Path, servers: None) -> None:
    out = quick("reaction", folder, timeout=150)
    assert out["runs"] == 1 and out["terminate_runs"] == 1
    for name in ("rollback", "rollback_dead_hooks", "pause", "rollback_ack", "pause_ack"):
        latencies(out, name, 30_000)
    latencies(out, "cli_signal_rollback", 30_000)
    latencies(out, "cli_signal_exit", 30_000)
    assert 0 < out["terminate_restore_p95_s"] <= out["terminate_restore_max_s"] < 120
    assert out["rollback_dead_hooks_p95_ratio"] > 0
    assert {"met", "dead_hooks_met", "terminate_met"} <= set(out["goal"])
    assert out["machine"]["cores"] >= 1 and "temporal" in out["machine"]["temporal_cli"]


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_alert_reaction(folder: Path, alert_servers: None) -> None:
    out = quick("alert_reaction", folder, timeout=75)
    assert out["runs"] == 1
    latencies(out, "alert_rollback", 30_000)
    latencies(out, "receiver_answer", 30_000)
    assert out["goal"]["alert_rollback_p95_ms"] == 500.0 and isinstance(out["goal"]["met"], bool)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_fleet(folder: Path, servers: None) -> None:
    out = quick("fleet", folder, timeout=75)
    [measured] = out["rollback_to_every_backend_at_stable"]
    assert measured["targets"] == 2 and measured["rounds"] == 1
    latencies(out | {f"rollback_{k}": v for k, v in measured.items()}, "rollback", 120_000)
    assert out["goal_p95_ms"] == 1000.0 and isinstance(out["goal_met"], bool)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_shift(folder: Path, servers: None) -> None:
    out = quick("shift", folder, timeout=150)
    assert set(out["routers"]) == {"haproxy", "envoy", "flagd"}
    for name, measured in out["routers"].items():
        assert measured["shifts"] == 2, name
        assert 0 <= measured["p50_ms"] <= measured["p95_ms"] <= measured["max_ms"] < 30_000, name
        assert measured["goal_p95_ms"] > 0, name
    assert out["routers"]["flagd"]["poll_ms"] > 0
    flips = out["blue_green"]
    assert flips["flips"] == 2 and flips["rps"] == 20.0
    assert flips["requests"] > 20 and flips["failed_requests"] == 0, flips
    # Both colours answered: the flips moved the traffic.
    assert {"canary/200", "stable/200"} <= set(flips["answers"]), flips
    assert isinstance(out["goal"]["met"], bool)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_scale(folder: Path, servers: None) -> None:
    out = quick("scale", folder, timeout=150)
    [run] = out["runs"]
    assert run["rollouts"] == 4 and run["hog"] is False
    assert share(run["late_check_share"]) and run["ratio_vs_bare"] > 0
    for kind in ("ours", "bare"):
        measured = run[kind]
        assert measured["workflows"] == 4, kind
        assert 0 < measured["checks_done"] <= measured["checks_due"], (kind, measured)
        assert measured["checks_per_s"] > 0 and measured["expected_checks_per_s"] == 4.0, kind
        assert share(measured["late_check_share"]), kind
        assert measured["not_baking_after_warm_up"] == 0, kind
        assert measured["worker_peak_rss_mb"] > 10, kind
        assert measured["worker_cpu_ms_per_check"] > 0, kind
        assert {"temporal", "prometheus", "worker"} == set(measured["cpu_wait_per_s"]), kind
        assert set(measured["worker_counters_in_window"]) >= {"sticky_cache_hit"}, kind
    # The goal is judged at 1,000 rollouts only.
    assert out["goal"]["rollouts"] == 1000 and out["goal"]["met"] is False
    assert out["settings"] == {"every_s": 1.0, "window_s": 3.0, "late_after_s": 1.0, "hog": None}
    assert out["machine"]["cores"] >= 1


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_scale_out(folder: Path, servers: None) -> None:
    out = quick("scale_out", folder, timeout=150)
    assert out["rollouts"] == 2 and out["bake_s"] == 3.0 and out["every_s"] == 1.0
    # Every rollout promoted, each shift and stage once, by the one worker left.
    assert out["wrong"] == [] and out["correct"] == out["promoted"] == 2, out
    assert 1 <= out["held_by_killed_worker"] <= 2
    assert len(out["workers_after_kill"]) == 1
    assert 0 < out["longest_check_gap_s"] < 120
    assert out["longest_check_gap_moved_s"] is not None
    assert 0 < out["all_ended_after_kill_s"] < 120
