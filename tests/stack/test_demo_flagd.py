"""The demo service in flagd mode: each request evaluates the flag file for its user."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from activities.routers import FlagdFile
from demo import loadgen
from demo.configs import FLAG
from demo.example_plans import flag_definition
from demo.flags import FlagReader, write_flag_file
from demo.service import DemoServer, Fault
from plans import FlagdRouter, TrafficSplit

WAIT = 30.0


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_flag_file(path, flag_definition())
    return path


@pytest.fixture
def app(flag_file: Path) -> Iterator[tuple[str, FlagReader]]:
    """The demo service on a free port with a flag reader; yields its base URL and the reader."""
    flags = FlagReader(str(flag_file), FLAG, poll_ms=50)
    server = DemoServer(("127.0.0.1", 0), "stable", Fault(), flags)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", flags
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        flags.close()


def shift(flag_file: Path, flags: FlagReader, percent: int) -> None:
    seen = flags.changes
    router = FlagdFile(FlagdRouter(file=str(flag_file), flag=FLAG))
    router.set_split("stable", "canary", TrafficSplit.canary_percent(percent))
    assert flags.wait_change(seen, WAIT)


def test_answers_carry_the_users_variant(app: tuple[str, FlagReader], flag_file: Path) -> None:
    url, flags = app
    assert httpx.get(url, headers={"X-User-Id": "user-1"}).headers["X-Version"] == "stable"
    shift(flag_file, flags, 100)
    response = httpx.get(url, headers={"X-User-Id": "user-1"})
    assert (response.headers["X-Version"], response.text) == ("canary", "canary\n")
    assert httpx.get(url + "variant?user=user-7").json() == {"user": "user-7", "version": "canary"}
    # A request without a user id cannot be bucketed: it gets the default, the stable.
    assert httpx.get(url).headers["X-Version"] == "stable"


def test_split_endpoint_and_metrics_per_variant(
    app: tuple[str, FlagReader], flag_file: Path
) -> None:
    url, flags = app
    assert httpx.get(url + "split?users=1000").json()["canary"] == 0
    shift(flag_file, flags, 30)
    split = httpx.get(url + "split?users=2000").json()
    assert split["users"] == 2000 and split["stable"] + split["canary"] == 2000
    assert 25 < split["canary_percent"] < 35
    for i in range(50):
        httpx.get(url, headers={"X-User-Id": f"user-{i}"})
    text = httpx.get(url + "metrics").text
    counted = {
        v: float(text.split(f'demo_requests_total{{code="200",version="{v}"}} ')[1].split()[0])
        for v in ("stable", "canary")
    }
    assert counted["stable"] + counted["canary"] == 50
    assert counted["canary"] > 0 and counted["stable"] > 0
    assert httpx.get(url + "split?users=0").status_code == 400


def test_fault_applies_to_the_named_variant(app: tuple[str, FlagReader], flag_file: Path) -> None:
    url, flags = app
    shift(flag_file, flags, 50)
    assert httpx.post(url + "fault?version=canary", json={"error_rate": 1}).status_code == 200
    assert httpx.get(url + "fault?version=canary").json()["error_rate"] == 1.0
    assert httpx.get(url + "fault?version=stable").json()["error_rate"] == 0.0
    codes = {}
    for i in range(200):
        response = httpx.get(url, headers={"X-User-Id": f"user-{i}"})
        codes.setdefault(response.headers["X-Version"], set()).add(response.status_code)
    assert codes == {"stable": {200}, "canary": {500}}
    assert httpx.post(url + "fault?version=blue", json={}).status_code == 400


async def test_loadgen_sends_a_population_of_users(
    app: tuple[str, FlagReader], flag_file: Path
) -> None:
    url, flags = app
    shift(flag_file, flags, 50)
    tally = await loadgen.run(url, rps=100, duration=1.0, users=200)
    versions = {version for version, _ in tally.answers}
    assert versions == {"stable", "canary"}, tally.line()


def test_compose_mounts_the_flag_file_where_the_flagd_plan_names_it() -> None:
    import yaml

    from demo import compose
    from plans import load_plan

    root = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    folder = str(Path(compose.FLAG_FILE).parent)
    assert f"flags:{folder}" in services["worker"]["volumes"]
    for name in ("stable", "canary"):
        assert f"flags:{folder}:ro" in services[name]["volumes"]
        assert "DEMO_FLAG_FILE" in services[name]["environment"]
    plan = load_plan(compose.FOLDER / "plan-flagd.yaml")
    assert plan.router.kind == "flagd" and plan.router.file == compose.FLAG_FILE
    seeded = (compose.FOLDER / "flags.json").read_text()
    assert '"defaultVariant": "stable"' in seeded


def test_a_flagd_stack_writes_its_flag_file_and_plan_and_runs_its_services_on_it(
    tmp_path: Path,
) -> None:
    import json

    from devstack import parts as stackparts
    from devstack.configs import render_haproxy, write_configs
    from devstack.info import DEFAULT_PORTS, describe, stack_info
    from plans import load_plan

    info = stack_info(tmp_path, dict(DEFAULT_PORTS), "flagd")
    write_configs(info)
    assert info.flag_file == str(tmp_path / "flags.json")
    flags = json.loads(Path(info.flag_file).read_text())
    assert flags == flag_definition()
    plan = load_plan(Path(info.plan_file))
    assert plan.router.kind == "flagd" and plan.router.target_key().endswith(FLAG)
    argv = stackparts.demo_argv(info, "canary")
    assert argv[argv.index("--flag-file") + 1] == info.flag_file
    assert argv[argv.index("--poll-ms") + 1] == "500"
    loadgen_argv = stackparts.loadgen_argv(info)
    assert loadgen_argv[loadgen_argv.index("--users") + 1] == "1000"
    # HAProxy only spreads load: both services serve both variants.
    assert "server canary 127.0.0.1:8002 weight 100" in render_haproxy(info)
    assert "read every 500 ms" in describe(info)


def test_the_haproxy_stack_is_unchanged(tmp_path: Path) -> None:
    from devstack import parts as stackparts
    from devstack.info import DEFAULT_PORTS, stack_info

    info = stack_info(tmp_path, dict(DEFAULT_PORTS))
    assert info.router == "haproxy" and info.flag_file is None
    assert "--flag-file" not in stackparts.demo_argv(info, "canary")
    assert "--users" not in stackparts.loadgen_argv(info)


def test_up_refuses_a_running_stack_of_the_other_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devstack
    from devstack import stack
    from devstack.info import DEFAULT_PORTS, stack_info

    running = stack_info(tmp_path, dict(DEFAULT_PORTS), "flagd")
    # Where up() looks them up.
    monkeypatch.setattr(stack, "is_up", lambda dir: True)
    monkeypatch.setattr(stack, "load", lambda dir: running)
    with pytest.raises(devstack.StackError, match="runs with router flagd, not haproxy"):
        devstack.up(tmp_path)
    assert devstack.up(tmp_path, router="flagd").reused
