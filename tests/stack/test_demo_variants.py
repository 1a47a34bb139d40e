"""The demo service's further variants: a third version, in its own process or behind a flag."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from activities.routers import FlagdFile
from demo import service
from demo.configs import FLAG, HAProxyLayout, haproxy_config
from demo.example_plans import flag_definition
from demo.flags import FlagReader, write_flag_file
from demo.service import DemoServer, Fault
from devstack.configs import render_envoy, render_haproxy, render_prometheus
from devstack.info import stack_info
from devstack.processes import StackError
from devstack.stack import _checked_variants
from plans import FlagdRouter
from plans.runtime.shares import VariantShares

VARIANTS = ("stable", "canary", "canary-b")
WAIT = 30.0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, Path, FlagReader]]:
    """A flag-mode demo service serving three variants; its URL, flag file and reader."""
    path = tmp_path / "flags.json"
    write_flag_file(path, flag_definition(extra=["canary-b"]))
    flags = FlagReader(str(path), FLAG, poll_ms=50)
    server = DemoServer(("127.0.0.1", 0), "stable", Fault(), flags, VARIANTS)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", path, flags
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        flags.close()


def test_a_flag_splits_users_over_three_variants(app: tuple[str, Path, FlagReader]) -> None:
    url, path, flags = app
    seen = flags.changes
    shares = VariantShares(shares={"stable": 50, "canary": 25, "canary-b": 25})
    assert FlagdFile(FlagdRouter(file=str(path), flag=FLAG)).set_shares(shares) == shares
    assert flags.wait_change(seen, WAIT)
    split = httpx.get(url + "split?users=4000").json()
    assert split["stable"] + split["canary"] + split["canary-b"] == 4000
    # 4,000 users: each share within 5 sigma (about 3.5 points at 25%).
    assert abs(split["canary-b"] / 4000 - 0.25) < 0.035, split
    assert abs(split["stable"] / 4000 - 0.50) < 0.04, split
    # The third variant has a fault of its own, and is counted under its own label.
    answer = httpx.post(url + "fault?version=canary-b", json={"error_rate": 1.0})
    assert answer.json() == {"error_rate": 1.0, "latency_ms": 0}
    codes: Counter[tuple[str, int]] = Counter()
    with httpx.Client() as http:
        for i in range(200):
            got = http.get(url, headers={"X-User-Id": f"user-{i}"})
            codes[(got.headers["X-Version"], got.status_code)] += 1
    assert {version for version, _ in codes} == set(VARIANTS)
    assert all(code == 500 for version, code in codes if version == "canary-b")
    assert all(code == 200 for version, code in codes if version != "canary-b")
    text = httpx.get(url + "metrics").text
    counted = f'demo_requests_total{{code="500",version="canary-b"}} {codes[("canary-b", 500)]}.0'
    assert counted in text


def test_the_default_flag_mode_serves_stable_and_canary_as_before(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flag_file(path, flag_definition())
    flags = FlagReader(str(path), FLAG, poll_ms=50)
    try:
        server = DemoServer(("127.0.0.1", 0), "stable", Fault(), flags)
        assert server.versions == ("stable", "canary")
        server.server_close()
    finally:
        flags.close()
    assert flag_definition()["flags"][FLAG]["variants"] == {"stable": "stable", "canary": "canary"}


def test_a_version_is_any_safe_name() -> None:
    assert service._version("canary-b") == "canary-b"
    assert service._variants("stable, canary,canary-b") == VARIANTS
    with pytest.raises(Exception, match="name a version"):
        service._version("b;c")
    with pytest.raises(Exception, match="each variant once"):
        service._variants("stable,stable")


def test_haproxy_backend_has_a_server_per_variant_at_weight_0(tmp_path: Path) -> None:
    layout = HAProxyLayout(
        app_bind="127.0.0.1:8080",
        exporter_bind="127.0.0.1:8405",
        admin_tcp_bind="127.0.0.1:9999",
        stable_address="127.0.0.1:8001",
        canary_address="127.0.0.1:8002",
        variants=(("canary-b", "127.0.0.1:8003"),),
    )
    lines = haproxy_config(layout).splitlines()
    servers = [line.strip() for line in lines if line.strip().startswith("server ")]
    assert servers[-1] == "server canary-b 127.0.0.1:8003 weight 0"
    assert len(servers) == 3


def ports() -> dict[str, int]:
    names = ["temporal", "temporal_ui", "temporal_http", "temporal_metrics", "app"]
    names += ["haproxy_metrics", "haproxy_admin", "stable", "canary", "prometheus", "canary-b"]
    return {name: 20000 + i for i, name in enumerate(names)}


def test_the_stack_renders_its_variants(tmp_path: Path) -> None:
    info = stack_info(tmp_path, ports(), "haproxy", ["canary-b"])
    assert info.variants == ["canary-b"]
    assert info.version_urls("canary-b") == ["http://127.0.0.1:20010/"]
    assert "server canary-b 127.0.0.1:20010 weight 0" in render_haproxy(info)
    assert "127.0.0.1:20010" in render_prometheus(info)
    flagd = stack_info(tmp_path, ports(), "flagd", ["canary-b"])
    # With a flag both services serve the variant: no server of its own.
    assert "canary-b" not in render_haproxy(flagd)
    assert flagd.version_urls("canary-b") == [flagd.stable_url, flagd.canary_url]
    at = ports() | {"envoy_app": 20100, "envoy_admin": 20101}
    envoy = yaml.safe_load(render_envoy(stack_info(tmp_path, at, "envoy", ["canary-b"])))
    # Behind Envoy the variant is a cluster of the route, at weight 0 until an experiment.
    (listener,) = envoy["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert {"name": "canary-b", "weight": 0} in route["route"]["weighted_clusters"]["clusters"]
    assert any(c["name"] == "canary-b" for c in envoy["static_resources"]["clusters"])
    plain = stack_info(tmp_path, ports(), "haproxy")
    assert "canary-b" not in render_haproxy(plain) and plain.variants == []


@pytest.mark.parametrize(
    ("variants", "said"),
    [
        (["b", "c", "d"], "4 variants at most"),
        (["canary"], "not stable or canary"),
        (["b", "b"], "name each further variant once"),
        (["prometheus"], "a part of the stack"),
    ],
)
def test_variants_a_stack_cannot_run_are_refused(variants: list[str], said: str) -> None:
    with pytest.raises(StackError, match=said):
        _checked_variants(variants)
