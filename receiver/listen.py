"""Where the receiver listens: plain TCP or TLS, and a bound on how long request headers take.

aiohttp's server has no header timeout of its own (only the keep-alive timeout, which older
releases start after the first answer), so a client that opens connections and never
finishes its headers would hold them open. Here every connection must deliver its request
line and headers within ``header_timeout`` of being accepted (including the TLS handshake),
and within ``header_timeout`` of the previous answer on a kept-alive connection; otherwise
it is closed. A request aiohttp cannot parse (a control character in a header, a line past
8 KiB) is answered as JSON too, like every other error of the receiver.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from plans import RolloutError
from plans.text import clip
from receiver.options import HEADER_TIMEOUT_S as HEADER_TIMEOUT_S


class UsageError(RolloutError):
    """A receiver that cannot start as asked; the message says what to change."""


log = logging.getLogger("rollout.alerts")


class JsonErrors(web.RequestHandler):
    """aiohttp's connection handler, answering what it cannot parse as JSON, not plain text."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse or serve, as JSON."""
        super().handle_error(request, status, exc, message)  # logs, and refuses a sent answer
        if status == 500:
            error = "the receiver failed on this request: its log says why"
        else:
            first = (message or "").strip().splitlines()[:1] or ["malformed"]
            error = (
                f"not an HTTP request this receiver can read ({clip(first[0], 80)}): send"
                " POST /alerts with Alertmanager's headers and JSON body"
            )
        answer = web.json_response({"error": error}, status=status)
        answer.force_close()
        return answer


class HeaderDeadline:
    """Closes a connection whose request headers have not arrived within ``seconds``."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a header timeout must be positive, not {seconds}")
        self.seconds = seconds
        self._timers: dict[web.RequestHandler, asyncio.TimerHandle] = {}

    def protocols(self, make: Callable[[], web.RequestHandler]) -> Callable[[], web.RequestHandler]:
        """A protocol factory for ``loop.create_server``: ``make``'s connections, each timed."""

        def accepted() -> web.RequestHandler:
            connection = make()
            loop = asyncio.get_running_loop()
            self._timers[connection] = loop.call_later(self.seconds, self._expire, connection)
            return connection

        return accepted

    @web.middleware
    async def arrived(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The application's first middleware: a request reaching it has all its headers."""
        timer = self._timers.pop(request.protocol, None)
        if timer is not None:
            timer.cancel()
        return await handler(request)

    def _expire(self, connection: web.RequestHandler) -> None:
        self._timers.pop(connection, None)
        transport = connection.transport
        if transport is None or transport.is_closing():
            return  # gone already, or still in its TLS handshake (which has its own bound)
        peer = transport.get_extra_info("peername")
        log.warning(
            "closed a connection from %s: its request headers did not arrive within %gs",
            peer[0] if isinstance(peer, tuple) else "?",
            self.seconds,
        )
        transport.abort()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate (chain) and its unencrypted private key."""
    for path, what in ((cert, "certificate"), (key, "private key")):
        try:
            Path(path).read_bytes()
        except OSError as error:
            raise UsageError(
                f"cannot read the TLS {what} {path} ({error.strerror or error}): give a PEM"
                " file the receiver can read"
            ) from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _Encrypted:
        raise UsageError(
            f"the private key {key} is encrypted: give the receiver an unencrypted key, readable"
            " only by it (openssl pkey -in KEY -out PLAIN)"
        ) from None
    except ssl.SSLError as error:
        raise UsageError(
            f"{cert} and {key} are not a PEM certificate and its private key"
            f" ({error.reason or error}): check that the key belongs to the certificate"
        ) from None
    return context


@asynccontextmanager
async def listening(
    app: web.Application,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    header_timeout: float = HEADER_TIMEOUT_S,
) -> AsyncIterator[int]:
    """Serve ``app`` on host:port (TLS with ``tls``) inside the block; yields the bound port."""
    deadline = HeaderDeadline(header_timeout)
    app.middlewares.insert(0, deadline.arrived)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    server: asyncio.Server | None = None
    loop = asyncio.get_running_loop()
    try:
        requests = runner.server
        assert requests is not None

        def connection() -> web.RequestHandler:
            # The keep-alive timeout bounds the wait for the headers of each later request;
            # aiohttp takes access_log=None as "no access log" (one line per alert is logged).
            return JsonErrors(
                requests,
                loop=loop,
                keepalive_timeout=header_timeout,
                access_log=None,  # type: ignore[arg-type]
            )

        try:
            server = await loop.create_server(
                deadline.protocols(connection),
                host,
                port,
                ssl=tls,
                ssl_handshake_timeout=header_timeout if tls else None,
                reuse_address=True,
            )
        except OSError as error:
            raise UsageError(
                f"cannot listen on {host}:{port} ({error.strerror or error}): choose another"
                " --listen"
            ) from None
        yield server.sockets[0].getsockname()[1]
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()
        if server is not None:
            await server.wait_closed()


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, which a service has not.
    raise _Encrypted
