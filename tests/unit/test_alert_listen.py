"""The receiver on a real socket: garbage headers, headers that never finish, and TLS.

Each test serves the receiver as `rollout alerts serve` does (``receiver.listen``) and
talks to it over TCP: raw bytes where an HTTP client would refuse to send them, and a real
TLS client against a certificate made here with openssl. Its Temporal client points where
nothing listens, so every answer here comes from the receiver itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client

from devstack.processes import free_port
from receiver.listen import HEADER_TIMEOUT_S, listening
from receiver.options import TLS_CERT_ENV, TLS_KEY_ENV
from receiver.receiver import AlertReceiver
from receiver.rules import DEFAULT_RULES
from receiver.serve import tls_files
from starter.arguments import parser
from starter.cli import run_command
from tests.unit.test_alerts import alert_data, body

TOKEN = "t0ken-for-tests"
BOUND = 0.5  # the header timeout the tests serve with, in seconds
LOCAL = "127.0.0.1"


async def receiver_app() -> AlertReceiver:
    nowhere = await Client.connect(f"{LOCAL}:{free_port()}", lazy=True)
    return AlertReceiver(nowhere, TOKEN, rules=DEFAULT_RULES)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A receiver served on a free port with a header timeout of BOUND seconds."""
    receiver = await receiver_app()
    async with listening(receiver.app(), LOCAL, 0, header_timeout=BOUND) as bound:
        yield bound


async def answer_to(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a new connection; the status, headers and body that come back."""
    reader, writer = await asyncio.open_connection(LOCAL, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        content = await asyncio.wait_for(reader.readexactly(length), timeout=10)
        return int(status_line.split()[1]), headers, content
    finally:
        writer.close()


def request_with(authorization: bytes, content: bytes = b"{}") -> bytes:
    return (
        b"POST /alerts HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
        b"Authorization: " + authorization + b"\r\n"
        b"Content-Length: " + str(len(content)).encode() + b"\r\n\r\n" + content
    )


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (or resets it)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    with contextlib.suppress(ConnectionResetError):
        while await asyncio.wait_for(reader.read(1024), timeout=10 * BOUND + 5):
            pass
    return loop.time() - start


# -- a malformed Authorization header ----------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        (b"Bearer \xff\xfe\xfd", "not UTF-8"),
        (b"Bearer " + TOKEN.encode() + b"\x80", "not UTF-8"),
        (b"\xc3\x28 " + TOKEN.encode(), "does not hold a bearer token"),
        (b"Bearer", "is empty"),
    ],
)
async def test_a_garbage_authorization_header_is_401_json(
    port: int, authorization: bytes, words: str
) -> None:
    status, headers, content = await answer_to(port, request_with(authorization, body()))
    assert status == 401, content
    assert headers["content-type"].startswith("application/json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert words in json.loads(content)["error"]


@pytest.mark.parametrize(
    "raw",
    [
        request_with(b"Bearer \x00" + TOKEN.encode()),  # a control character HTTP forbids
        request_with(b"Bearer " + b"x" * 9_000),  # a header line past aiohttp's 8 KiB
        b"NOT-HTTP\r\n\r\n",
    ],
)
async def test_a_request_that_is_not_http_gets_400_json(port: int, raw: bytes) -> None:
    status, headers, content = await answer_to(port, raw)
    assert status == 400, content
    assert headers["content-type"].startswith("application/json")
    assert json.loads(content)["error"].startswith("not an HTTP request this receiver can read")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b))
async def test_any_authorization_bytes_get_a_json_4xx_never_a_5xx(port: int, value: bytes) -> None:
    status, headers, content = await answer_to(port, request_with(value, body()))
    assert status in (400, 401), content
    assert headers["content-type"].startswith("application/json")
    assert json.loads(content)["error"]


async def test_the_right_token_on_the_same_raw_path_is_taken(port: int) -> None:
    resolved = body(alert_data(status="resolved"))
    status, _, content = await answer_to(port, request_with(f"Bearer {TOKEN}".encode(), resolved))
    assert status == 200, content
    assert json.loads(content)["alerts"][0]["outcome"] == "skipped"


# -- headers that never finish -----------------------------------------------------------------


async def test_headers_that_never_finish_are_closed_within_the_bound(port: int) -> None:
    reader, writer = await asyncio.open_connection(LOCAL, port)
    try:
        writer.write(b"POST /alerts HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bea")
        await writer.drain()
        waited = await closed_after(reader)
    finally:
        writer.close()
    assert BOUND * 0.8 <= waited < BOUND + 3, waited


async def test_a_connection_that_sends_nothing_is_closed_within_the_bound(port: int) -> None:
    reader, writer = await asyncio.open_connection(LOCAL, port)
    try:
        waited = await closed_after(reader)
    finally:
        writer.close()
    assert BOUND * 0.8 <= waited < BOUND + 3, waited


async def test_a_kept_alive_connection_gets_the_same_bound_for_its_next_headers(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection(LOCAL, port)
    try:
        writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: receiver\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 200")
        await asyncio.wait_for(reader.readexactly(3), timeout=10)  # "ok\n"
        writer.write(b"POST /alerts HTTP/1.1\r\nHost: rec")
        await writer.drain()
        waited = await closed_after(reader)
    finally:
        writer.close()
    assert waited < BOUND + 3, waited


async def test_headers_sent_slowly_but_within_the_bound_are_answered(port: int) -> None:
    reader, writer = await asyncio.open_connection(LOCAL, port)
    try:
        for piece in (b"GET /-/healthy HTTP/1.1\r\n", b"Host: receiver\r\n", b"\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(BOUND / 4)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")


def test_the_header_timeout_is_10s_unless_asked_otherwise() -> None:
    args = parser().parse_args(["alerts", "serve"])
    assert args.header_timeout == HEADER_TIMEOUT_S == 10.0
    assert parser().parse_args(["alerts", "serve", "--header-timeout", "2.5"]).header_timeout == 2.5


def test_a_header_timeout_that_is_not_a_positive_number_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_command(["alerts", "serve", "--header-timeout", "0"]) == 2
    assert "'0' is not a number of seconds" in capsys.readouterr().err


# -- TLS ---------------------------------------------------------------------------------------


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        message = "openssl is not installed: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def make_certificate(folder: Path, names: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (a subjectAltName) and its key, by openssl."""
    cert, key = folder / "receiver.crt", folder / "receiver.key"
    subprocess.run(
        [openssl(), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=rollout-alerts", "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return make_certificate(tmp_path)


async def test_the_receiver_serves_tls_with_a_real_certificate(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    port = free_port()
    env = {
        **os.environ,
        "ROLLOUT_ALERT_TOKEN": TOKEN,
        "TEMPORAL_ADDRESS": f"{LOCAL}:{free_port()}",
        "ROLLOUT_DIR": str(tmp_path / "no-stack"),
    }
    argv = ["-m", "starter", "alerts", "serve", "--listen", f"{LOCAL}:{port}"]
    argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=env, stderr=asyncio.subprocess.PIPE
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    url = f"https://{LOCAL}:{port}"
    try:
        async with httpx.AsyncClient(timeout=5, verify=trusted) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/-/healthy")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the receiver did not answer its health check over TLS within 30s")
            refused = await http.post(f"{url}/alerts", content=body())
            assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
            resolved = body(alert_data(status="resolved"))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            taken = await http.post(f"{url}/alerts", content=resolved, headers=headers)
            assert taken.status_code == 200, taken.text
            assert taken.json()["alerts"][0]["outcome"] == "skipped"
            assert taken.extensions["network_stream"].get_extra_info("ssl_object") is not None
        # A client that does not trust the certificate, or speaks plain HTTP, gets nowhere.
        async with httpx.AsyncClient(timeout=5) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"{url}/-/healthy")
            with pytest.raises(httpx.TransportError):
                await untrusting.get(f"http://{LOCAL}:{port}/-/healthy")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert f"listening on https://{LOCAL}:{port}/alerts" in err.decode()


async def test_tls_in_process_with_the_environments_files(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv(TLS_CERT_ENV, str(cert))
    monkeypatch.setenv(TLS_KEY_ENV, str(key))
    files = tls_files(None, None)
    assert files == (str(cert), str(key))
    from receiver.listen import tls_context

    receiver = await receiver_app()
    async with listening(receiver.app(), LOCAL, 0, tls=tls_context(*files)) as bound:
        trusted = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(timeout=5, verify=trusted) as http:
            response = await http.get(f"https://{LOCAL}:{bound}/-/healthy")
    assert response.status_code == 200 and response.text == "ok\n"


def test_tls_refuses_files_it_cannot_use_and_says_what_to_fix(
    certificate: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert, key = certificate
    monkeypatch.setenv("ROLLOUT_ALERT_TOKEN", TOKEN)
    monkeypatch.delenv(TLS_CERT_ENV, raising=False)
    monkeypatch.delenv(TLS_KEY_ENV, raising=False)
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [openssl(), "pkey", "-in", str(key), "-out", str(encrypted), "-aes256",
         "-passout", "pass:secret"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    serve = ["alerts", "serve", "--listen", f"{LOCAL}:{free_port()}"]
    cases = [
        (["--tls-cert", str(cert)], "give --tls-key too"),
        (["--tls-key", str(key)], "give --tls-cert too"),
        (["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key)], "cannot read the TLS"),
        (["--tls-cert", str(cert), "--tls-key", str(encrypted)], "is encrypted"),
        (["--tls-cert", str(key), "--tls-key", str(key)], "not a PEM certificate and its"),
    ]
    for flags, words in cases:
        assert run_command([*serve, *flags]) == 1, flags
        said = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
        assert words in said, (flags, said)
