"""`judge_quality.py --streams FILE`: stages from outside in, one verdict line out each."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks._streams_input import MalformedStage, checked_stage, parsed_line

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


def test_malformed_stages_are_named_first_and_the_others_judged(tmp_path: Path) -> None:
    """All lines are checked first, so a bad one is named at once; the good ones are still
    judged, and the exit code says that some were left out."""
    rng = np.random.default_rng(2)
    short, flat = stage("short", rng), stage("flat", rng)
    short["canary"]["requests"] = short["canary"]["requests"][:-1]
    _flatten(flat["stable"])
    path = tmp_path / "stages.jsonl"
    lines = [stage("ok", rng), short, None, flat]
    path.write_text("".join("\n" if s is None else json.dumps(s) + "\n" for s in lines))
    done = judged(path)
    assert done.returncode == 1
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["ok"]
    named = done.stderr.splitlines()
    assert named[0].startswith(f"{path}:2: canary.requests has 19 entries, needs 20")
    assert named[1].startswith(f"{path}:4: stable.latency_counts[0] must be a list of counts")
    assert named[-1] == f"{path}: 2 of 3 stage(s) malformed and not judged"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["missing.jsonl", "."])
def test_a_file_that_cannot_be_read_is_a_usage_error(tmp_path: Path, where: str) -> None:
    done = judged(tmp_path / where)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert f"error: argument --streams: cannot read {tmp_path / where}" in done.stderr


def _set(keys: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    """A change to one field, ``keys`` a dotted path (list indices as numbers)."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in keys.split(".")]
        node: Any = raw
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda raw: raw.pop(key)


def _flatten(side: dict[str, Any]) -> None:
    side["latency_counts"] = [count for row in side["latency_counts"] for count in row]


def _rows_shift(raw: dict[str, Any]) -> None:
    row = raw["canary"]["latency_counts"][3]
    row[1] -= row[0] + 1
    row[0] = -1


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "missing id": (_drop("id"), "id is missing"),
    "missing field": (_drop("bake_s"), "bake_s is missing"),
    "id empty": (_set("id", ""), 'id must be a non-empty string or a whole number, got ""'),
    "id a list": (_set("id", [1]), "id must be a non-empty string or a whole number, got a list"),
    "version not an object": (_set("canary", None), "canary must be an object of requests,"),
    "series missing": (lambda raw: raw["stable"].pop("errors"), "stable.errors is missing"),
    "integer as string": (_set("step_s", "15"), "step_s must be a whole number of seconds"),
    "integer as bool": (_set("pre_steps", True), "pre_steps must be a whole number of steps"),
    "integer a fraction": (_set("check_every_s", 30.5), "check_every_s must be a whole"),
    "step_s zero": (_set("step_s", 0), "step_s must be a whole number of seconds >= 1, got 0"),
    "pre_steps negative": (_set("pre_steps", -1), "pre_steps must be a whole number of steps >= 0"),
    "bake_s not a multiple": (_set("bake_s", 310), "bake_s (310) must be a multiple of step_s"),
    "bake_s below a check": (_set("check_every_s", 600), "bake_s (300) must be at least check"),
    "buckets too few": (_set("buckets", [None]), "buckets must be a list of at least 2"),
    "bucket not positive": (_set("buckets.0", 0), "buckets[0] must be a number of seconds > 0"),
    "bucket a string": (_set("buckets.1", "0.05"), "buckets[1] must be a number of seconds"),
    "bucket not finite": (_set("buckets.1", math.inf), "buckets[1] must be a number"),
    "buckets descend": (_set("buckets.1", 0.01), "buckets[1] (0.01) must be greater than the"),
    "two nulls": (_set("buckets.2", None), "buckets[2] is null, but only the last bound may be"),
    "no null last": (_set("buckets.6", 5.0), "buckets[6] must be null (+Inf), got 5.0"),
    "series short": (_set("stable.errors", [0] * 19), "stable.errors has 19 entries, needs 20"),
    "series not a list": (_set("canary.errors", 3), "canary.errors must be a list of counts"),
    "count NaN": (
        _set("canary.requests.2", math.nan),
        "canary.requests[2] must be a whole number >= 0 (at most 2**53), got NaN",
    ),
    "count Infinity": (_set("stable.requests.2", math.inf), "got Infinity (not a JSON number)"),
    "count negative": (_set("canary.errors.4", -1), "canary.errors[4] must be a whole number >= 0"),
    "count a fraction": (_set("canary.requests.5", 2.5), "canary.requests[5] must be a whole"),
    "count a bool": (_set("stable.errors.6", False), "got false (a boolean)"),
    "count too big": (_set("canary.requests.0", 2**60), "at most 2**53"),
    "errors over requests": (_set("canary.errors.1", 10**6), "canary.errors[1] (1000000) exceeds"),
    "rows too few": (lambda raw: raw["canary"]["latency_counts"].pop(), "has 19 rows, needs 20"),
    "row ragged": (lambda raw: raw["canary"]["latency_counts"][0].pop(), "has 6 counts, needs 7"),
    "rows flat": (lambda raw: _flatten(raw["canary"]), "canary.latency_counts[0] must be a list"),
    "row count negative": (_rows_shift, "canary.latency_counts[3][0] must be a whole number"),
    "row sum off": (_set("stable.latency_counts.7.0", 10**6), "stable.latency_counts[7] sums to"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_each_malformed_field_is_named_with_what_to_fix(name: str) -> None:
    change, message = MALFORMED[name]
    raw = stage(name, np.random.default_rng(3))
    change(raw)
    with pytest.raises(MalformedStage) as caught:
        checked_stage(parsed_line(json.dumps(raw).encode()))
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": "a",', "not valid JSON: Expecting property name"),
        (b"[1, 2]", "a stage must be a JSON object, got a list of 2"),
        (b"NaN", "got NaN (not a JSON number)"),
        (b"\xff{}", "not UTF-8 (byte 0)"),
    ],
)
def test_a_line_that_is_no_json_object_says_so(line: bytes, message: str) -> None:
    with pytest.raises(MalformedStage) as caught:
        checked_stage(parsed_line(line))
    assert message in caught.value.problems[0]


def test_every_problem_of_a_line_is_named_at_once() -> None:
    raw = stage("many", np.random.default_rng(4))
    raw.update(id=None, step_s="15", buckets=[0.1, None, None])
    raw["stable"]["requests"][0] = -3
    with pytest.raises(MalformedStage) as caught:
        checked_stage(parsed_line(json.dumps(raw).encode()))
    fields = [problem.split(" ")[0] for problem in caught.value.problems]
    assert fields == ["id", "step_s", "buckets[1]", "stable.requests[0]"]


def test_a_numbered_id_and_fields_of_ones_own_are_taken() -> None:
    raw = stage("notes", np.random.default_rng(6))
    raw.update(id=7, truth="healthy", scenario={"rps": 50})
    raw["canary"]["note"] = "kept out of the judge"
    found = checked_stage(parsed_line(json.dumps(raw).encode()))
    assert found.id == "7"
    assert set(found.requests) == {"canary", "stable"}


def test_integers_may_carry_a_zero_fraction() -> None:
    raw = stage("floats", np.random.default_rng(5))
    expected = checked_stage(parsed_line(json.dumps(raw).encode()))
    raw["bake_s"] = 300.0
    raw["canary"]["requests"] = [float(n) for n in raw["canary"]["requests"]]
    found = checked_stage(parsed_line(json.dumps(raw).encode()))
    assert found == expected
    assert isinstance(found.bake_s, int) and isinstance(found.requests["canary"][0], int)
