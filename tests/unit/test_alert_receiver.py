"""The receiver's HTTP side: the token, malformed bodies, and what never reaches Temporal.

The receiver's Temporal client points at a port where nothing listens (a lazy client, as the
receiver makes): any request that got as far as Temporal would be answered 503, so a 401,
a 400 or a 200 proves it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio.client import Client

import devstack
from devstack.info import ALERT_PORTS, DEFAULT_PORTS, stack_info
from devstack.processes import free_port
from receiver.decide import Handled
from receiver.receiver import AlertReceiver
from receiver.rules import DEFAULT_RULES
from starter.cli import run_command
from tests.unit.test_alerts import alert_data, body

TOKEN = "t0ken-for-tests"


@pytest.fixture
async def http() -> AsyncIterator[TestClient[Any, Any]]:
    nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    receiver = AlertReceiver(nowhere, TOKEN, rules=DEFAULT_RULES, handled=Handled())
    async with TestClient(TestServer(receiver.app())) as client:
        yield client


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(""),
        bearer(TOKEN + "x"),
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
async def test_without_the_right_token_the_answer_is_401(
    http: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    response = await http.post("/alerts", data=body(), headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in (await response.json())["error"]


async def test_a_wrong_token_and_a_missing_one_are_told_apart(
    http: TestClient[Any, Any],
) -> None:
    missing = await http.post("/alerts", data=body())
    wrong = await http.post("/alerts", data=body(), headers=bearer("not-the-token"))
    assert missing.status == wrong.status == 401
    said_missing, said_wrong = (await missing.json())["error"], (await wrong.json())["error"]
    assert said_missing.startswith("no bearer token came with the request")
    assert said_wrong.startswith("the bearer token is wrong")
    # RFC 6750: a request without credentials gets the bare challenge, a bad token its error.
    assert "error=" not in missing.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


async def test_the_scheme_is_read_case_blind_as_http_says(http: TestClient[Any, Any]) -> None:
    resolved = body(alert_data(status="resolved"))
    response = await http.post(
        "/alerts", data=resolved, headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status == 200


async def test_a_malformed_body_is_400_with_the_reason(http: TestClient[Any, Any]) -> None:
    response = await http.post("/alerts", data=b"{not json", headers=bearer())
    assert response.status == 400
    assert "not JSON" in (await response.json())["error"]
    response = await http.post("/", data=body(version="2"), headers=bearer())
    assert response.status == 400
    assert 'version is "2"' in (await response.json())["error"]


async def test_alerts_with_nothing_to_do_are_answered_without_temporal(
    http: TestClient[Any, Any],
) -> None:
    alerts = [
        alert_data(status="resolved"),
        alert_data(labels={"severity": "warning", "service": "checkout"}),
        alert_data(labels={"severity": "critical"}),
    ]
    response = await http.post("/alerts", data=body(*alerts, truncatedAlerts=2), headers=bearer())
    assert response.status == 200
    answer = await response.json()
    assert answer["truncated_alerts"] == 2
    assert [a["outcome"] for a in answer["alerts"]] == ["skipped"] * 3
    assert "resolved" in answer["alerts"][0]["detail"]
    assert "no rule matches" in answer["alerts"][1]["detail"]
    assert "no 'service' label" in answer["alerts"][2]["detail"]


async def test_an_alert_that_needs_temporal_gets_503_so_alertmanager_retries(
    http: TestClient[Any, Any],
) -> None:
    resolved = alert_data(status="resolved")
    response = await http.post("/alerts", data=body(alert_data(), resolved), headers=bearer())
    assert response.status == 503
    answer = await response.json()
    assert "cannot reach Temporal" in answer["error"]
    # Still a report per alert: the one Temporal was needed for is deferred, not lost.
    assert [a["outcome"] for a in answer["alerts"]] == ["deferred", "skipped"]
    assert "cannot reach Temporal" in answer["alerts"][0]["detail"]


async def test_a_body_past_the_limit_is_refused_as_json(http: TestClient[Any, Any]) -> None:
    huge = json.dumps({"version": "4", "pad": "x" * (5 * 1024 * 1024)}).encode()
    response = await http.post("/alerts", data=huge, headers=bearer())
    assert response.status == 413
    assert response.content_type == "application/json"
    assert "larger than 4 MiB" in (await response.json())["error"]


async def test_every_error_is_answered_as_json(http: TestClient[Any, Any]) -> None:
    nowhere = await http.post("/nowhere", data=body(), headers=bearer())
    assert nowhere.status == 404 and nowhere.content_type == "application/json"
    assert "Alertmanager posts to /alerts" in (await nowhere.json())["error"]
    wrong_method = await http.get("/alerts")
    assert wrong_method.status == 405 and wrong_method.content_type == "application/json"
    assert "POST" in wrong_method.headers["Allow"]
    assert "GET /-/healthy is the health check" in (await wrong_method.json())["error"]


async def test_the_health_check_needs_no_token(http: TestClient[Any, Any]) -> None:
    response = await http.get("/-/healthy")
    assert response.status == 200 and (await response.text()).strip() == "ok"


def test_dev_up_with_alerts_asks_for_the_alerting_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[bool] = []
    info = stack_info(tmp_path, {**DEFAULT_PORTS, **ALERT_PORTS})

    def up(dir: Path, router: str = "haproxy", alerts: bool = False) -> devstack.StackInfo:
        asked.append(alerts)
        return info

    monkeypatch.setattr(devstack, "up", up)
    assert run_command(["dev", "up", "--alerts", "--dir", str(tmp_path)]) == 0
    assert run_command(["dev", "up", "--dir", str(tmp_path)]) == 0
    assert asked == [True, False]


def test_serve_refuses_a_bad_listen_address_and_a_missing_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(["alerts", "serve", "--listen", "nowhere"]) == 2
    assert "'nowhere' is not HOST:PORT" in capsys.readouterr().err
    monkeypatch.delenv("ROLLOUT_ALERT_TOKEN", raising=False)
    assert run_command(["alerts", "serve"]) == 1
    assert "ROLLOUT_ALERT_TOKEN is not set or empty" in capsys.readouterr().err


async def test_the_receiver_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ROLLOUT_ALERT_TOKEN": TOKEN,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "ROLLOUT_DIR": str(tmp_path / "no-stack"),
    }
    argv = ["-m", "starter", "alerts", "serve", "--listen", f"127.0.0.1:{port}"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/-/healthy")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the receiver did not answer its health check within 30s")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "listening on" in err.decode() and "stopping" in err.decode()
