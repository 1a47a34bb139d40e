"""`rollout alerts serve`'s options: their defaults and argparse types, without the server.

The CLI builds its help from these; the server's modules (aiohttp, the Temporal client, the
rules' models) load only when it starts.
"""

from __future__ import annotations

import argparse

DEFAULT_LISTEN = "127.0.0.1:9095"
DEFAULT_TOKEN_ENV = "ROLLOUT_ALERT_TOKEN"
TLS_CERT_ENV = "ROLLOUT_ALERT_TLS_CERT"
TLS_KEY_ENV = "ROLLOUT_ALERT_TLS_KEY"
# Alertmanager sends its headers at once; a client that takes longer is holding a connection.
HEADER_TIMEOUT_S = 10.0


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port (an argparse type)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port)


def env_name(text: str) -> str:
    """An environment variable's name (an argparse type)."""
    from plans.text import ENV_NAME

    if not ENV_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an environment variable name: use letters, digits and '_'"
        )
    return text


def label_name(text: str) -> str:
    """A Prometheus label name (an argparse type)."""
    from receiver.rules import LABEL_NAME

    if not LABEL_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a label name: use letters, digits and '_', not starting with a digit"
        )
    return text


def seconds(text: str) -> float:
    """A positive number of seconds (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value
