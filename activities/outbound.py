"""Requests to addresses a plan names: one policy for metric sources, web gates, hooks and
notifications.

A plan is untrusted input to the worker, and the worker sits inside a network: whatever a
plan's URLs name, the worker never connects to a link-local or cloud metadata address
(``plans.addresses``), checked on each address a name resolves to and then connected to
that very address, so a second lookup cannot answer differently. With
``ROLLOUT_OUTBOUND_HOSTS`` set, it connects only to the hosts listed there. Every answer is
read as a stream up to a byte cap, and one deadline covers the whole request, from the
connection to the answer's last byte, however slowly the other side sends it.
"""

from __future__ import annotations

import contextvars
import json
import ssl
import threading
import time
import unicodedata
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from activities.outbound_policy import (
    HOSTS_ENV,
    HostAllowlist,
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    OutboundTimeout,
    OutboundTooLarge,
    OutboundUnreachable,
    Resolver,
    current_policy,
    reason_of,
    system_resolve,
)

# The policy's names, for the callers that send requests through this module.
__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXCERPT_CHARS",
    "HOSTS_ENV",
    "Answer",
    "HostAllowlist",
    "OutboundError",
    "OutboundPolicy",
    "OutboundRefused",
    "OutboundTimeout",
    "OutboundTooLarge",
    "OutboundUnreachable",
    "Resolver",
    "Session",
    "current_policy",
    "excerpt",
    "shared_session",
    "system_resolve",
]

EXCERPT_CHARS = 200
DEFAULT_MAX_BYTES = 1024 * 1024


# When the request running on this thread must be over (time.monotonic()), if any.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "outbound_deadline", default=None
)


def _clamped(timeout: float | None) -> float | None:
    """A socket operation's timeout, cut to what is left of the request's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the running request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamped(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamped(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _clamped(timeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the policy allows, to the very addresses it checked."""

    def __init__(self, policy: OutboundPolicy | None, guarded: bool = True) -> None:
        self._policy = policy
        self._guarded = guarded
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if not self._guarded:  # a proxy of the worker's own: the target was checked by name
            targets = [host]
        else:
            policy = self._policy or current_policy()
            targets = [str(a) for a in policy.addresses(host, port)]
        failed: Exception | None = None
        for target in targets:
            try:
                stream = self._inner.connect_tcp(
                    target, port, _clamped(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failed = error
                continue
            return _DeadlineStream(stream)
        assert failed is not None
        raise failed

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise OutboundRefused("requests for a plan go over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Answer:
    """An answer read within the caps: its status, headers and (at most the capped) body."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        """The body as text (UTF-8 unless the answer names its charset)."""
        charset = self.headers.get("content-type", "").partition("charset=")[2].split(";")[0]
        try:
            return self.content.decode(charset.strip() or "utf-8", "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is none."""
        return json.loads(self.content)

    def excerpt(self) -> str:
        """The start of the body, safe to show people (see ``excerpt``)."""
        return excerpt(self.text)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of an answer's text as it may be shown: no control or format characters
    (no terminal escapes, no bidirectional overrides), runs of spaces as one, ``limit``
    characters at most."""
    kept = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text[: limit * 4]
    )
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: limit - 1].rstrip() + "\u2026"


class Session:
    """Connections kept for requests to what plans name; safe to share between threads.

    Proxies named in the environment (``HTTP(S)_PROXY``, ``NO_PROXY``) are read once, when
    the session is made; a request through one is checked by its host's name only.
    """

    def __init__(
        self,
        policy: OutboundPolicy | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
    ) -> None:
        self._policy = policy
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._max = max_connections
        self._proxies = urllib.request.getproxies_environment()
        self._pools: dict[str | None, httpcore.ConnectionPool] = {}
        self._lock = threading.Lock()

    def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        content: bytes | None = None,
        deadline_s: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        truncate: bool = False,
    ) -> Answer:
        """Send one request; the answer read within ``deadline_s`` and ``max_bytes``.

        Past the byte cap the answer is cut (``truncate``) or refused (OutboundTooLarge).
        Errors name the host, never the whole URL: a notification's URL is a secret.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise OutboundRefused("requests for a plan go to http:// or https:// URLs only")
        policy = self._policy or current_policy()
        proxy = self._proxy_for(parts.scheme, host)
        if proxy is not None:
            policy.check_name(host)
        deadline = time.monotonic() + deadline_s
        limits = {"connect": deadline_s, "read": deadline_s, "write": deadline_s}
        token = _DEADLINE.set(deadline)
        try:
            with self._pool(proxy).stream(
                method,
                url,
                headers=list(headers),
                content=content,
                extensions={"timeout": {**limits, "pool": deadline_s}},
            ) as response:
                body, cut = _read(response, deadline, max_bytes, truncate, host)
                status, raw = response.status, response.headers
        except httpcore.TimeoutException:
            why = f"no answer within {deadline_s:g}s"
            raise OutboundTimeout(f"{host} did not answer within {deadline_s:g}s", why) from None
        except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError) as error:
            raise OutboundRefused(f"cannot send this request to {host}: {error}") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError) as error:
            why = reason_of(error)
            raise OutboundUnreachable(f"{host} cannot be reached: {why}", why) from None
        finally:
            _DEADLINE.reset(token)
        return Answer(status, httpx.Headers(raw), body, cut)

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        if not self._proxies or urllib.request.proxy_bypass(host):  # NO_PROXY
            return None
        return self._proxies.get(scheme) or self._proxies.get("all")

    def _pool(self, proxy: str | None) -> httpcore.ConnectionPool:
        with self._lock:
            pool = self._pools.get(proxy)
            if pool is None:
                pool = self._pools[proxy] = self._new_pool(proxy)
            return pool

    def _new_pool(self, proxy: str | None) -> httpcore.ConnectionPool:
        common: dict[str, Any] = {"ssl_context": self._ssl, "max_connections": self._max}
        if proxy is None:
            return httpcore.ConnectionPool(network_backend=_GuardedBackend(self._policy), **common)
        return httpcore.HTTPProxy(
            proxy_url=proxy, network_backend=_GuardedBackend(None, guarded=False), **common
        )


def _read(
    response: httpcore.Response, deadline: float, max_bytes: int, truncate: bool, host: str
) -> tuple[bytes, bool]:
    """The body, chunk by chunk: past the deadline a timeout, past ``max_bytes`` cut or refused."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_stream():
        if time.monotonic() > deadline:
            raise httpcore.ReadTimeout("the deadline passed")
        if size + len(chunk) > max_bytes:
            if not truncate:
                raise OutboundTooLarge(f"{host} answered more than {max_bytes:,} bytes")
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


_shared: Session | None = None
_shared_lock = threading.Lock()


def shared_session() -> Session:
    """The worker's one session for one-off requests (hooks, smoke checks, webhooks)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Session()
        return _shared
