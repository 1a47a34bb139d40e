"""`rollout alerts serve`: run the receiver until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import ssl
import sys
from typing import TYPE_CHECKING

from plans import WebhookChannel
from receiver.listen import HEADER_TIMEOUT_S, UsageError
from receiver.options import DEFAULT_LISTEN as DEFAULT_LISTEN
from receiver.options import DEFAULT_TOKEN_ENV as DEFAULT_TOKEN_ENV
from receiver.options import TLS_CERT_ENV, TLS_KEY_ENV
from receiver.options import env_name as env_name
from receiver.options import label_name as label_name
from receiver.options import listen_address as listen_address
from receiver.options import seconds as seconds
from receiver.rules import DEFAULT_RULES, Rules, load_rules

if TYPE_CHECKING:
    from receiver.receiver import AlertReceiver

# The server's modules (aiohttp, the Temporal client) are imported when it starts, not
# whenever the `rollout` CLI builds its help.

log = logging.getLogger("rollout.alerts")


def token_from(variable: str) -> str:
    """The bearer token Alertmanager must send, from the environment variable named."""
    token = os.environ.get(variable, "").strip()
    if not token:
        raise UsageError(
            f"environment variable {variable} is not set or empty: put the token Alertmanager"
            " sends (its webhook's http_config.authorization.credentials) there; a receiver"
            " that can roll back rollouts never runs without one"
        )
    return token


def rules_from(path: str | None) -> Rules:
    return DEFAULT_RULES if path is None else load_rules(path)


def tls_files(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """The certificate and key to serve TLS with (options, else the environment), or None."""
    cert = cert or os.environ.get(TLS_CERT_ENV) or None
    key = key or os.environ.get(TLS_KEY_ENV) or None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "--tls-cert" if cert is None else "--tls-key"
        raise UsageError(
            f"TLS needs both a certificate and its key: give {missing} too (or"
            f" {TLS_CERT_ENV} and {TLS_KEY_ENV})"
        )
    return cert, key


async def cmd_alerts_serve(args: argparse.Namespace) -> int:
    """Check the options, then serve until asked to stop; exit 0 after a clean stop."""
    from temporalio.client import Client

    from activities.notifiers.webhook import WebhookNotifier
    from client.connection import connect_config
    from receiver.listen import tls_context
    from receiver.receiver import AlertReceiver

    # Asked to stop while still starting, it stops as soon as it listens.
    stop = _stop_on_signals()
    host, port = args.listen
    token = token_from(args.token_env)
    rules = rules_from(args.rules)
    files = tls_files(args.tls_cert, args.tls_key)
    tls = tls_context(*files) if files else None
    channel = None
    if args.notify_webhook_env is not None:
        channel = WebhookChannel(url_env=args.notify_webhook_env)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Lazy: the receiver starts (and answers 503) while Temporal is still coming up.
    client = await Client.connect(**connect_config(), lazy=True)
    receiver = AlertReceiver(
        client,
        token,
        rules=rules,
        service_label=args.service_label,
        notifier=WebhookNotifier(for_plans=False) if channel else None,
        notify_channel=channel,
    )
    await serve(receiver, host, port, stop, tls=tls, header_timeout=args.header_timeout)
    return 0


async def serve(
    receiver: AlertReceiver,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    header_timeout: float = HEADER_TIMEOUT_S,
) -> None:
    """Serve on host:port until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    from receiver.listen import listening
    from receiver.replies import PATHS

    app = receiver.app()
    async with listening(app, host, port, tls=tls, header_timeout=header_timeout) as bound_port:
        rules = "; ".join(rule.describe() for rule in receiver.rules.rules)
        log.info(
            "listening on %s://%s:%d%s for Alertmanager; service label %r; rules: %s",
            "https" if tls else "http",
            host,
            bound_port,
            PATHS[0],
            receiver.service_label,
            rules,
        )
        if tls is None and not is_loopback(host):
            log.warning(
                "serving plain HTTP on %s: the bearer token crosses the network readable;"
                " give --tls-cert and --tls-key",
                host,
            )
        await (stop or _stop_on_signals()).wait()
        log.info("stopping")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a loopback address or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set (the running loop's handlers replace the defaults)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    return stop
