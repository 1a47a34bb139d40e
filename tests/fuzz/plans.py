"""Hypothesis strategies for rollout plans: valid ones, and broken ones that say where they break.

A broken plan comes with the field path a good error message must name (``stages.1.weight``,
``router.runtime_api``, ``service``...): each is a valid plan with exactly one thing
made wrong, so the path is known.
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from plans.variables import refused_everywhere

SAFE_FIRST = string.ascii_letters + string.digits
SAFE_REST = SAFE_FIRST + "_.:-"
ENV_FIRST = string.ascii_letters + "_"
ENV_REST = ENV_FIRST + string.digits
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
YEAR_S = 365 * 86400
WINDOWS = {"10s": 10, "30s": 30, "1m": 60}
# Characters a name must never carry: they would close a PromQL string, open a selector,
# start another HAProxy command, or are simply not ASCII.
HOSTILE = [*"\"'`{}[]()=~!,;|+*/\\$# \t\n", "é", "ß", "名", "\u200b", "😀", "\x00"]


@dataclass(frozen=True)
class Broken:
    """A plan with one thing wrong, and the field path the error must name."""

    data: Any
    field: str
    what: str


safe_names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(SAFE_FIRST),
    st.text(SAFE_REST, max_size=62),
)
env_names = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ENV_FIRST),
    st.text(ENV_REST, max_size=40),
).filter(lambda name: refused_everywhere(name) is None)  # TEMPORAL_* is never a plan's


def duration(low_s: int, high_s: int) -> st.SearchStrategy[tuple[str, int]]:
    """A duration written as a plan writes it, with its length in seconds."""

    def written(unit: str) -> st.SearchStrategy[tuple[str, int]]:
        size = UNITS[unit]
        low = max(1, -(-low_s // size))
        return st.integers(low, high_s // size).map(lambda n: (f"{n}{unit}", n * size))

    units = [u for u, size in UNITS.items() if max(1, -(-low_s // size)) <= high_s // size]
    return st.sampled_from(units).flatmap(written)


@st.composite
def gates(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(safe_names, max_size=3, unique=True))
    found = []
    for name in names:
        window = draw(st.sampled_from([*WINDOWS, "$window"]))
        label = draw(st.sampled_from(["$canary", "$stable", "$service", "$backend", "${canary}"]))
        gate: dict[str, Any] = {
            "name": name,
            "query": f'sum(rate(http_requests_total{{server="{label}",code=~"5.."}}[{window}]))'
            f' / sum(rate(http_requests_total{{server="{label}"}}[{window}]))',
        }
        bounds = draw(st.sampled_from(["max", "min", "both"]))
        low = draw(st.floats(-1e6, 1e6, allow_nan=False))
        high = low + draw(st.floats(0, 1e6, allow_nan=False))
        if bounds in ("max", "both"):
            gate["max"] = high
        if bounds in ("min", "both"):
            gate["min"] = low
        if draw(st.booleans()):
            gate["failure_limit"] = draw(st.integers(1, 1000))
        if draw(st.booleans()):
            gate["severity"] = draw(st.sampled_from(["critical", "warning", "info"]))
        found.append(gate)
    return found


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plan data that must be accepted as it is."""
    stable, canary = draw(st.lists(safe_names, min_size=2, max_size=2, unique=True))
    plan_gates = draw(gates())
    gate_names = [g["name"] for g in plan_gates]
    count = draw(st.integers(1, 6))
    weights = sorted(
        draw(st.lists(st.integers(0, 100), min_size=count, max_size=count, unique=True))
    )
    stage_names = draw(st.lists(safe_names, min_size=count, max_size=count, unique=True))
    stages = []
    for name, weight in zip(stage_names, weights, strict=True):
        # Every gate window (1m at most, $window is 1m by default) fits in the bake.
        bake, bake_s = draw(duration(60, YEAR_S - 86400))
        every, _ = draw(duration(1, 86400))
        stage: dict[str, Any] = {"name": name, "weight": weight, "bake": bake}
        stage["check_every"] = every
        if draw(st.booleans()):
            stage["approval"] = True
        if gate_names and draw(st.booleans()):
            stage["gates"] = draw(st.lists(st.sampled_from(gate_names), unique=True))
        if draw(st.booleans()):
            stage["progress_deadline"] = f"{bake_s + draw(st.integers(1, 86400))}s"
            stage["on_deadline"] = draw(st.sampled_from(["pause", "rollback", "notify"]))
        stages.append(stage)
    runtime_api = draw(
        st.one_of(
            st.integers(1, 65535).map(lambda p: f"tcp://127.0.0.1:{p}"),
            st.just("unix:///run/haproxy/admin.sock"),
            st.just("/var/run/haproxy.sock"),
        )
    )
    data: dict[str, Any] = {
        "service": draw(safe_names),
        "version": draw(safe_names),
        "stable": stable,
        "canary": canary,
        "router": {"kind": "haproxy", "runtime_api": runtime_api, "backend": draw(safe_names)},
        "metrics": {
            "kind": "prometheus",
            "url": draw(
                st.one_of(
                    st.integers(1, 65535).map(lambda p: f"http://127.0.0.1:{p}"),
                    st.just("https://prometheus.example.com/prefix"),
                )
            ),
        },
        "gates": plan_gates,
        "stages": stages,
    }
    if draw(st.booleans()):
        data["metrics"]["bearer_token_env"] = draw(env_names)
    if draw(st.booleans()):
        data["notify"] = {"webhook_url_env": draw(env_names)}
    if draw(st.booleans()):
        data["router"]["timeout"] = draw(duration(1, 300))[0]
    return data


bad_names = st.one_of(
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(SAFE_REST, max_size=10),
        st.sampled_from(HOSTILE),
        st.text(SAFE_REST, max_size=10),
    ),
    st.just(""),
    st.text(SAFE_REST, min_size=64, max_size=400).map(lambda t: "a" + t),
    st.sampled_from(["-lead", ".lead", "_lead", ":lead"]),
    st.text(min_size=1, max_size=30).filter(lambda t: any(c not in SAFE_REST for c in t)),
)
not_a_string = st.one_of(
    st.integers(), st.lists(st.integers(), max_size=2), st.just({"a": 1}), st.booleans()
)
not_a_weight = st.one_of(
    st.just("abc"),
    st.just([10]),
    st.just({"w": 1}),
    st.booleans(),
    st.just(None),
    st.floats(0.01, 99.99).filter(lambda f: f != int(f)),
    st.integers(101, 10**12),
    st.integers(-(10**12), -1),
)
not_a_duration = st.one_of(
    st.just("10x"),
    st.just(""),
    st.just("ten minutes"),
    st.just("1e9s"),
    st.just("5 s s"),
    st.just([1]),
    st.just({"s": 1}),
    st.booleans(),
    st.just(float("nan")),
    st.integers(-(10**9), -1),
    st.integers(-(10**9), -1).map(lambda n: f"{n}s"),
    st.integers(YEAR_S + 1, 10**15).map(lambda n: f"{n}s"),
    st.integers(366, 10**9).map(lambda n: f"{n}d"),
    st.just("99999999999999999999999w"),
)


@st.composite
def broken_plans(draw: st.DrawFn) -> Broken:
    """A valid plan with one thing made wrong, and the field the error must name."""
    data = copy.deepcopy(draw(valid_plans()))
    stages = data["stages"]
    i = draw(st.integers(0, len(stages) - 1))
    kind = draw(
        st.sampled_from(
            [
                "bad name",
                "name not a string",
                "missing field",
                "bad weight",
                "weights out of order",
                "bad duration",
                "check_every too short",
                "deadline not after bake",
                "unknown field",
                "unknown placeholder",
                "window longer than bake",
                "bad runtime_api",
                "bad url",
                "bad env name",
                "unknown gate",
                "duplicate stage",
                "no stages",
                "stages not a list",
                "gate without threshold",
                "same stable and canary",
                "wrong router kind",
            ]
        )
    )
    if kind == "bad name":
        where = draw(
            st.sampled_from(
                ["service", "version", "stable", "canary", "router.backend", f"stages.{i}.name"]
                + (
                    [f"gates.{draw(st.integers(0, len(data['gates']) - 1))}.name"]
                    if data["gates"]
                    else []
                )
            )
        )
        _set(data, where, draw(bad_names))
        return Broken(data, where, kind)
    if kind == "name not a string":
        where = draw(st.sampled_from(["service", "stable", "canary", f"stages.{i}.name"]))
        _set(data, where, draw(not_a_string))
        return Broken(data, where, kind)
    if kind == "missing field":
        choices = ["service", "stable", "canary", "router", "metrics", "stages"]
        choices += ["router.runtime_api", "router.backend", "metrics.url"]
        choices += [f"stages.{i}.name", f"stages.{i}.weight"]
        if data["gates"]:
            choices += ["gates.0.name", "gates.0.query"]
        where = draw(st.sampled_from(choices))
        parent, key = _parent(data, where)
        del parent[key]
        return Broken(data, where, kind)
    if kind == "bad weight":
        _set(data, f"stages.{i}.weight", draw(not_a_weight))
        return Broken(data, f"stages.{i}.weight", kind)
    if kind == "weights out of order":
        if len(stages) < 2:
            stages.append(
                {"name": "again-" + stages[0]["name"][:50], "weight": stages[0]["weight"]}
            )
            return Broken(data, "stages.1.weight", kind)
        j = draw(st.integers(1, len(stages) - 1))
        stages[j]["weight"] = draw(st.integers(0, stages[j - 1]["weight"]))
        return Broken(data, f"stages.{j}.weight", kind)
    if kind == "bad duration":
        field = draw(st.sampled_from(["bake", "check_every"]))
        stages[i].pop("progress_deadline", None)
        _set(data, f"stages.{i}.{field}", draw(not_a_duration))
        return Broken(data, f"stages.{i}.{field}", kind)
    if kind == "check_every too short":
        stages[i]["check_every"] = draw(st.sampled_from([0, "0s", "500ms", "999ms", 0.5]))
        return Broken(data, f"stages.{i}.check_every", kind)
    if kind == "deadline not after bake":
        stages[i]["progress_deadline"] = stages[i]["bake"]
        return Broken(data, f"stages.{i}", kind)
    if kind == "unknown field":
        where = draw(st.sampled_from(["", "router.", "metrics.", f"stages.{i}."]))
        key = draw(st.sampled_from(["bakee", "weigth", "extra", "Service", "url_", "ñame"]))
        parent = _get(data, where.rstrip(".")) if where else data
        if key in parent:
            key += "_x"
        parent[key] = draw(st.one_of(st.integers(), st.text(max_size=5)))
        return Broken(data, where + key, kind)
    if kind == "unknown placeholder":
        if not data["gates"]:
            data["gates"] = [{"name": "g", "query": "up", "max": 1}]
        placeholder = draw(st.sampled_from(["$foo", "${bar}", "$Canary", "$version", "$9"]))
        data["gates"][0]["query"] += f' * on() group_left up{{x="{placeholder}"}}'
        return Broken(data, "gates.0.query", kind)
    if kind == "window longer than bake":
        data["gates"] = [{"name": "slow", "query": "sum(rate(x[2h]))", "max": 1}]
        for stage in stages:
            stage.pop("gates", None)
        stages[i]["bake"] = "1h"
        stages[i].pop("progress_deadline", None)
        return Broken(data, "gates.0.query", kind)
    if kind == "bad runtime_api":
        data["router"]["runtime_api"] = draw(
            st.sampled_from(
                [
                    "tcp://127.0.0.1",
                    "tcp://:9999",
                    "tcp://h:0",
                    "tcp://h:70000",
                    "http://x:1",
                    "unix://",
                    "admin.sock",
                    "",
                    "tcp://h:port",
                ]
            )
        )
        return Broken(data, "router.runtime_api", kind)
    if kind == "bad url":
        data["metrics"]["url"] = draw(
            st.sampled_from(
                [
                    "prometheus:9090",
                    "ftp://x",
                    "http://",
                    "http://h:0",
                    "http://h:99999",
                    "http://a b",
                    "",
                    "javascript:alert(1)",
                ]
            )
        )
        return Broken(data, "metrics.url", kind)
    if kind == "bad env name":
        value = draw(st.sampled_from(["1ABC", "A-B", "A B", "", "$HOME", "X" * 200, "ÉNV"]))
        if draw(st.booleans()):
            data["metrics"]["bearer_token_env"] = value
            return Broken(data, "metrics.bearer_token_env", kind)
        data["notify"] = {"webhook_url_env": value}
        return Broken(data, "notify.webhook_url_env", kind)
    if kind == "unknown gate":
        stages[i]["gates"] = ["no-such-gate"]
        data["gates"] = [g for g in data["gates"] if g["name"] != "no-such-gate"]
        return Broken(data, f"stages.{i}.gates", kind)
    if kind == "duplicate stage":
        if len(stages) < 2:
            stages.append({**stages[0], "weight": min(stages[0]["weight"] + 1, 100)})
            if stages[1]["weight"] == stages[0]["weight"]:
                stages[0]["weight"] -= 1
        else:
            stages[-1]["name"] = stages[0]["name"]
        return Broken(data, "stages", kind)
    if kind == "no stages":
        data["stages"] = []
        return Broken(data, "stages", kind)
    if kind == "stages not a list":
        data["stages"] = draw(st.sampled_from(["canary", 5, {"name": "x"}, None]))
        return Broken(data, "stages", kind)
    if kind == "gate without threshold":
        data["gates"] = [{"name": "bare", "query": "up"}]
        for stage in stages:
            stage.pop("gates", None)
        return Broken(data, "gates.0", kind)
    if kind == "same stable and canary":
        data["canary"] = data["stable"]
        return Broken(data, "stable and canary", kind)
    data["router"]["kind"] = draw(st.sampled_from(["nginx", "istio", "", "HAPROXY"]))
    return Broken(data, "router", kind)


def not_a_mapping() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(st.integers(), max_size=3),
        st.text(max_size=20).filter(lambda t: t.strip() != ""),
        st.integers(),
        st.none(),
    )


def _split(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _get(data: Any, path: str) -> Any:
    for part in _split(path):
        data = data[part]
    return data


def _parent(data: Any, path: str) -> tuple[Any, Any]:
    parts = _split(path)
    for part in parts[:-1]:
        data = data[part]
    return data, parts[-1]


def _set(data: Any, path: str, value: Any) -> None:
    parent, key = _parent(data, path)
    parent[key] = value
