"""`judge_quality.py --streams FILE`: stages from outside in, one verdict line out each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "judge_quality.py"
KEYS = {"id", "outcome", "at_check", "reason"}


def stage(
    name: str,
    rng: np.random.Generator,
    *,
    errors: float = 1.0,
    slower: float = 1.0,
    bounds: tuple[float | None, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, None),
    step_s: int = 15,
    pre_steps: int = 0,
    check_every_s: int = 30,
    bake_s: int = 300,
) -> dict[str, Any]:
    """A stage of the contract: Poisson traffic, binomial errors, log-normal latency."""
    steps = pre_steps + bake_s // step_s
    edges = np.array([np.inf if b is None else b for b in bounds])

    def side(rps: float, error_x: float, scale: float) -> dict[str, Any]:
        requests = rng.poisson(rps * step_s, steps)
        counts = []
        for n in requests:
            latency = 0.08 * scale * np.exp(rng.normal(0, 0.6, n))
            counts.append(np.bincount(np.searchsorted(edges, latency), minlength=len(edges)))
        return {
            "requests": requests.tolist(),
            "errors": rng.binomial(requests, 0.01 * error_x).tolist(),
            "latency_counts": [c.tolist() for c in counts],
        }

    return {
        "id": name,
        "step_s": step_s,
        "pre_steps": pre_steps,
        "check_every_s": check_every_s,
        "bake_s": bake_s,
        "buckets": list(bounds),
        "canary": side(50, errors, slower),
        "stable": side(200, 1.0, 1.0),
    }


def judged(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--streams", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_each_stage_gets_one_line_in_the_contracts_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stages = [
        stage("healthy", rng),
        stage("errors-x5", rng, errors=5.0, pre_steps=4),
        stage("slower", rng, slower=1.5, bounds=(0.1, 0.5, 2.0, None), step_s=10),
        stage("tiny", rng, bake_s=60, check_every_s=60),
    ]
    path = tmp_path / "stages.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in stages) + "\n")
    done = judged(path)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["healthy", "errors-x5", "slower", "tiny"]
    for line in lines:
        assert set(line) == KEYS
        assert line["outcome"] in {"rolled_back", "paused", "promoted", "held"}
        assert isinstance(line["reason"], str) and line["reason"]
        assert line["at_check"] is None or isinstance(line["at_check"], int)
    by_id = {line["id"]: line for line in lines}
    assert by_id["healthy"]["outcome"] == "promoted" and by_id["healthy"]["at_check"] is None
    assert by_id["errors-x5"]["outcome"] == "rolled_back"
    assert by_id["errors-x5"]["reason"].startswith("error-rate: rate x")
    assert by_id["slower"]["outcome"] == "rolled_back"
    assert "p95-latency" in by_id["slower"]["reason"]
    assert 1 <= by_id["slower"]["at_check"] <= 30


def test_a_malformed_stage_names_its_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    good = stage("ok", rng)
    bad = stage("short", rng)
    bad["canary"]["requests"] = bad["canary"]["requests"][:-1]
    path = tmp_path / "stages.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    done = judged(path)
    assert done.returncode != 0
    assert f"{path}:2:" in done.stderr and "entries" in done.stderr
    assert json.loads(done.stdout.splitlines()[0])["id"] == "ok"
