"""The parsers of `rollout report`, `dev`, `demo`, `alerts`, `freeze`, `schedule` and
`completion`, for ``starter.arguments``; like it, they import no command's code."""

from __future__ import annotations

from typing import Any

from client.connection import stack_dir
from receiver import options
from starter.parsing import Command, add_json, help_page

ROUTER_OPTION: dict[str, Any] = {
    "choices": ["haproxy", "envoy", "flagd"],
    "default": "haproxy",
    "help": "what the demo plan moves: HAProxy's server weights, Envoy's weighted clusters"
    " (the load goes through Envoy), or a feature flag in a flagd file (DIR/flags.json) that"
    " the demo services evaluate per user id (default: %(default)s)",
}
DIR_HELP = "the dev stack's folder: configs, logs, the Temporal database (default: %(default)s)"
REPORT_HELP = (
    "`rollout report SERVICE` writes the report of the service's latest rollout (running or"
    " ended) into --out (default: $ROLLOUT_REPORT_DIR, else the dev stack's reports folder,"
    " else ./rollout-reports, in SERVICE/RUN_ID/): report.html (plots embedded, opens"
    " offline), report.md with its PNGs, report.json; of an experiment, experiment.md with"
    " the plot of each variant's effect, experiment.json. `rollout report --since 7d` prints the"
    " review of every rollout started in the last 7 days instead (--service to keep one)."
)


def add_parsers(sub: Any, by: str) -> None:
    """Add these commands to `rollout`'s subparsers; ``by`` is the default for --by."""
    add_report(sub)
    add_dev(sub)
    add_alerts(sub)
    add_governance(sub, by)
    add_completion(sub)


def add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write a rollout's report with plots, or review the rollouts of a span",
        description=REPORT_HELP,
    )
    p.add_argument("service", nargs="?", help="the service whose rollout to report on")
    p.add_argument(
        "--run", dest="run_id", help="the run id (default: the latest run of the rollout)"
    )
    p.add_argument(
        "--format",
        choices=["md", "html", "json"],
        help="write only this format (default: all three); with --since, json prints JSON",
    )
    p.add_argument("--out", help="the folder to write the report into")
    p.add_argument("--since", help="review the rollouts started this long ago until now: 7d, 24h")
    p.add_argument("--service", dest="of_service", help="with --since: only this service")
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    add_json(p, "the files written (with --since: the review, as --format json)")
    p.set_defaults(run=Command("starter.report_commands:cmd_report"))


def add_dev(sub: Any) -> None:
    """`rollout dev up|down|fault` and `rollout demo`."""
    dev = sub.add_parser(
        "dev",
        **help_page(
            "run the dev stack on 127.0.0.1: Temporal, HAProxy, Prometheus, the demo service,"
            " load and a worker"
        ),
    ).add_subparsers(dest="dev", required=True, metavar="ACTION")
    p = dev.add_parser(
        "up", **help_page("start the dev stack in the background and print its stack.json")
    )
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    p.add_argument("--router", **ROUTER_OPTION)
    p.add_argument(
        "--alerts",
        action="store_true",
        help="also run Alertmanager and `rollout alerts serve`: Prometheus alerts on the"
        " canary's error rate, and the alert rolls the demo rollout back",
    )
    p.add_argument(
        "--targets",
        help="a fleet too: one HAProxy backend per target (e.g. staging,eu,us-west,us-east),"
        " each with its own stable and canary demo service and load; DIR/fleet.yaml releases"
        " to them all",
    )
    p.add_argument(
        "--variants",
        help="an experiment's further demo variants beside stable and canary, comma-separated"
        " (e.g. canary-b): with haproxy each runs as its own demo service, a server of the"
        " backend at weight 0 (with envoy also a cluster of its route); with flagd a variant"
        " of the flag",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the same: stack.json is always printed as one JSON object (schema: docs/json.md)",
    )
    p.set_defaults(run=Command("starter.dev_commands:cmd_dev_up"))
    p = dev.add_parser("down", **help_page("stop every process the dev stack started, by pid"))
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    add_json(p, "the processes stopped")
    p.set_defaults(run=Command("starter.dev_commands:cmd_dev_down"))
    p = dev.add_parser(
        "fault", **help_page("make a demo version fail or slow down, live (0 and 0 heal it)")
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="share of requests answered with a 500, from 0 to 1 (default: %(default)s)",
    )
    p.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        help="delay added to every request, in milliseconds (default: %(default)s)",
    )
    p.add_argument(
        "--version",
        default="canary",
        help="which demo version misbehaves: stable, canary or a variant the stack was"
        " started with (default: %(default)s)",
    )
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    add_json(p, "the version's fault now")
    p.set_defaults(run=Command("starter.dev_commands:cmd_dev_fault"))

    p = sub.add_parser(
        "demo",
        **help_page(
            "start the dev stack and a real rollout on it, followed live (exit codes as for"
            " start --follow)"
        ),
    )
    p.add_argument(
        "--faulty",
        action="store_true",
        help="make the canary fail 30%% of its requests at 50%% (blue-green: once promoted),"
        " to watch a rollback",
    )
    p.add_argument(
        "--strategy",
        choices=["canary", "blue-green"],
        default="canary",
        help="canary: 10%% -> 50%% -> 100%%; blue-green: a preview, then one flip to 100%%"
        " (default: %(default)s)",
    )
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    p.add_argument("--router", **ROUTER_OPTION)
    p.add_argument(
        "--fleet",
        action="store_true",
        help="a release across targets (staging, eu, us-west, us-east) in three waves,"
        " followed as a tree; exit 0 promoted, 3 halted or rolled back",
    )
    p.add_argument(
        "--targets", help="with --fleet: the targets, comma-separated (default: the four above)"
    )
    p.add_argument(
        "--faulty-target",
        metavar="T",
        help="with --fleet: this target's canary fails half its requests, and its wave halts"
        " the release",
    )
    p.add_argument(
        "--rollback-all",
        action="store_true",
        help="with --fleet: on a failing target, put every promoted target back on stable too",
    )
    p.set_defaults(run=Command("starter.dev_commands:cmd_demo"))


def add_alerts(sub: Any) -> None:
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
        type=options.listen_address,
        default=options.listen_address(options.DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to listen; the webhook's path is /alerts (default: {options.DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--token-env",
        type=options.env_name,
        default=options.DEFAULT_TOKEN_ENV,
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
        type=options.label_name,
        default="service",
        metavar="LABEL",
        help="the alert label naming the rollout's service (default: %(default)s)",
    )
    p.add_argument(
        "--notify-webhook-env",
        type=options.env_name,
        metavar="VAR",
        help="post notify alerts to the Slack-compatible webhook URL in this variable",
    )
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=f"serve HTTPS with this PEM certificate (chain); with --tls-key (default:"
        f" ${options.TLS_CERT_ENV})",
    )
    p.add_argument(
        "--tls-key",
        metavar="FILE",
        help=f"the certificate's unencrypted PEM private key (default: ${options.TLS_KEY_ENV})",
    )
    p.add_argument(
        "--header-timeout",
        type=options.seconds,
        default=options.HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help="close a connection whose request headers take longer (default: %(default)g)",
    )
    p.set_defaults(run=Command("starter.alert_commands:cmd_alerts_serve"))


def add_governance(sub: Any, by: str) -> None:
    """`rollout freeze` and `rollout schedule`."""
    p = sub.add_parser(
        "freeze",
        help="add, list or remove freezes: no rollout of a service (or any) adds traffic",
        description="Freezes hold every rollout of a service (--service) or of all (--all)"
        " from --from (default now) until --until: no increase in traffic, rollbacks as"
        " ever. A running rollout reads them before each increase.",
    )
    p.add_argument(
        "action", choices=["add", "list", "remove"], help="add a freeze, list them, or remove one"
    )
    p.add_argument("id", nargs="?", help="remove: the freeze's id (`rollout freeze list`)")
    p.add_argument("--service", help="add: the service frozen")
    p.add_argument("--all", action="store_true", help="add: freeze every service")
    p.add_argument("--from", dest="start", help="add: start, e.g. 2026-12-20T18:00 (default now)")
    p.add_argument("--until", help="add: end, e.g. 2027-01-04T08:00")
    p.add_argument("--tz", default="UTC", help="the zone of --from/--until (default: UTC)")
    p.add_argument(
        "--reason", default="", help="add: why, shown to whoever waits; remove: why it may end"
    )
    p.add_argument("--by", default=by, help="who (default: %(default)s)")
    p.add_argument(
        "--key",
        help="remove: the SSH private key that signs it (default as for `rollout approve`)",
    )
    p.add_argument("--task-queue", help="the workers' task queue (default as for start)")
    add_json(p, "the freeze added or removed, or the freezes and recent removals")
    p.set_defaults(run=Command("starter.governance:cmd_freeze"))

    p = sub.add_parser(
        "schedule",
        help="start a rollout at a time (--at) or on a cron (--cron); list; delete",
        description="`rollout schedule PLAN --at 2026-12-01T15:00 --tz Europe/Berlin` or"
        " `--cron '0 15 * * TUE'` creates a Temporal Schedule that starts the rollout;"
        " `rollout schedule list`, `rollout schedule delete ID`. A start that finds the"
        " service still rolling out is skipped, and says so in its result.",
    )
    p.add_argument("target", help="the plan file, or list, or delete")
    p.add_argument("schedule_id", nargs="?", help="delete: the schedule's id")
    p.add_argument("--at", help="one start, e.g. 2026-12-01T15:00")
    p.add_argument("--cron", help="a cron expression, e.g. '0 15 * * TUE'")
    p.add_argument("--tz", default="UTC", help="the zone of --at/--cron (default: UTC)")
    p.add_argument("--task-queue", help="the workers' task queue (default as for start)")
    add_json(p, "the schedule created or deleted, or the schedules")
    p.set_defaults(run=Command("starter.governance:cmd_schedule"))


def add_completion(sub: Any) -> None:
    """`rollout completion bash|zsh`: a completion script generated from this parser."""
    p = sub.add_parser(
        "completion",
        help="print a bash or zsh completion script for rollout, generated from its parser",
        description="Print a shell completion script for rollout, made from its own parser, so"
        " it knows every command and option. Install it for bash with"
        " `rollout completion bash > ~/.local/share/bash-completion/completions/rollout`,"
        " for zsh with `rollout completion zsh > ~/.zfunc/_rollout` (a folder on $fpath);"
        " then open a new shell.",
    )
    p.add_argument("shell", choices=["bash", "zsh"], help="the shell the script is for")
    p.set_defaults(run=Command("starter.completion:cmd_completion"))
