"""`rollout alerts serve`: the Alertmanager receiver (``receiver``), started from the CLI."""

from __future__ import annotations

import argparse
from typing import Any

from receiver import listen, serve
from starter.server import use_dev_stack_when_unset


def help_page(help: str) -> dict[str, Any]:
    """Keyword arguments for add_parser: the same sentence in the list and on the page."""
    return {"help": help, "description": help[0].upper() + help[1:] + "."}


async def cmd_alerts_serve(args: argparse.Namespace) -> int:
    """`rollout alerts serve`: the receiver, talking to the server every command talks to."""
    use_dev_stack_when_unset()
    return await serve.cmd_alerts_serve(args)


def add_parser(sub: Any) -> None:
    """`rollout alerts serve`: Alertmanager's webhook receiver."""
    alerts = sub.add_parser(
        "alerts",
        **help_page("receive Alertmanager's alerts and roll back (or pause) their rollouts"),
    ).add_subparsers(dest="alerts", required=True, metavar="ACTION")
    p = alerts.add_parser(
        "serve",
        **help_page("serve Alertmanager's webhook until SIGTERM or Ctrl-C"),
        epilog="A firing alert acts on the rollout its service label names when a rule"
        " matches its labels and it started after the rollout first shifted traffic; the"
        " command is sent as the user alertmanager with the alert's name, summary and link"
        " as the reason, once per alert (fingerprint and start). Without --rules:"
        ' severity="critical" rolls back. Requests need Authorization: Bearer <token>.',
    )
    p.add_argument(
        "--listen",
        type=serve.listen_address,
        default=serve.listen_address(serve.DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to listen; the webhook's path is /alerts (default: {serve.DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--token-env",
        type=serve.env_name,
        default=serve.DEFAULT_TOKEN_ENV,
        metavar="VAR",
        help="the environment variable holding the bearer token Alertmanager sends"
        " (default: %(default)s); the receiver does not start without it",
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        help="YAML rules mapping alert labels to rollback, pause or notify (first match wins)",
    )
    p.add_argument(
        "--service-label",
        type=serve.label_name,
        default="service",
        metavar="LABEL",
        help="the alert label naming the rollout's service (default: %(default)s)",
    )
    p.add_argument(
        "--notify-webhook-env",
        type=serve.env_name,
        metavar="VAR",
        help="post notify alerts to the Slack-compatible webhook URL in this variable",
    )
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=f"serve HTTPS with this PEM certificate (chain); with --tls-key (default:"
        f" ${serve.TLS_CERT_ENV})",
    )
    p.add_argument(
        "--tls-key",
        metavar="FILE",
        help=f"the certificate's unencrypted PEM private key (default: ${serve.TLS_KEY_ENV})",
    )
    p.add_argument(
        "--header-timeout",
        type=serve.seconds,
        default=listen.HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help="close a connection whose request headers take longer (default: %(default)g)",
    )
    p.set_defaults(run=cmd_alerts_serve)
