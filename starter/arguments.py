"""The `rollout` command line: its commands, their options and help, and its exit codes."""

from __future__ import annotations

import argparse
from typing import Any

from client.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, stack_dir
from client.connection import DEFAULT_STACK_DIR as DEFAULT_DIR
from client.signing import user_name
from plans import CommandKind
from plans.templates import TEMPLATES
from starter import alert_commands, governance
from starter.alert_commands import help_page
from starter.dev_commands import cmd_demo, cmd_dev_down, cmd_dev_fault, cmd_dev_up
from starter.exits import (
    EXIT_ABORTED,
    EXIT_ERROR,
    EXIT_FROM_RECORDS,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_PROMOTED,
    EXIT_ROLLED_BACK,
)
from starter.plan_init import ROUTER_EXAMPLES, TEMPLATE_HELP, cmd_init
from starter.report_commands import add_parser as add_report_parser
from starter.rollout_commands import (
    cmd_command,
    cmd_list,
    cmd_setup,
    cmd_start,
    cmd_status,
    cmd_validate,
)

DESCRIPTION = (
    "`rollout`: validate plans, start rollouts, watch and steer them, and run the dev stack."
)

EPILOG = f"""\
exit codes:
  {EXIT_PROMOTED}    done; for start --follow, status --watch and demo: the rollout was promoted
  {EXIT_ERROR}    error: Temporal unreachable, no such rollout, a command or a start refused
       (the reason is printed), a run terminated without a rollback (status --watch),
       a dev stack problem, or an unexpected failure (its traceback is printed)
  {EXIT_INVALID}    invalid plan (every wrong field is named) or invalid command line
  {EXIT_ROLLED_BACK}    the rollout was rolled back (start --follow, status --watch, demo)
  {EXIT_ABORTED}    the rollout was aborted or cancelled (start --follow, status --watch, demo)
  {EXIT_FROM_RECORDS}    status shows Temporal's own records: no worker answered its status query
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); a rollout keeps running in Temporal

environment:
  TEMPORAL_ADDRESS       host:port of the Temporal frontend
  TEMPORAL_NAMESPACE     namespace (default: default)
  TEMPORAL_API_KEY       API key, e.g. for Temporal Cloud
  TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME
                         TLS to the server
  TEMPORAL_PROFILE       profile of the config file (default: default)
  TEMPORAL_CONFIG_FILE   the config file (default ~/.config/temporalio/temporal.toml)
  TEMPORAL_UI_URL        base of the Temporal UI links printed (default: the dev
                         stack's UI, else http://localhost:8233)
  ROLLOUT_DIR            the dev stack's folder (default {DEFAULT_DIR})
  ROLLOUT_TASK_QUEUE     the workers' task queue that start uses (default {DEFAULT_TASK_QUEUE})
  ROLLOUT_REPORT_DIR     where `rollout report` writes (default: the dev stack's reports)

which Temporal server:
  1. TEMPORAL_ADDRESS, when set;
  2. else the address of the temporal.toml profile, when it names one;
  3. else the dev stack in $ROLLOUT_DIR (default ./{DEFAULT_DIR}) when it is up: its address,
     and its namespace and task queue unless TEMPORAL_NAMESPACE or ROLLOUT_TASK_QUEUE say
     otherwise;
  4. else {DEFAULT_ADDRESS}.
  Credentials and TLS come from the TEMPORAL_* variables or the profile in every case.
  `rollout-worker` reads the same variables and profile, but never looks for a dev stack.
"""

# What each operator command does, for its help: (one line, the paragraph of its page).
COMMAND_HELP: dict[CommandKind, tuple[str, str]] = {
    CommandKind.PAUSE: (
        "stop the bake clock and the progression (gates are still checked)",
        "Pause a rollout: the bake clock and the progression stop until `rollout resume`."
        " Gates are still checked while paused, and a failing gate still rolls back.",
    ),
    CommandKind.RESUME: (
        "continue a paused rollout where it stopped",
        "Resume a paused rollout: the bake clock runs again from where it stopped. After a"
        " pause by the gates or a deadline, `rollout retry` also checks the gates at once.",
    ),
    CommandKind.APPROVE: (
        "let a stage that waits for approval go on to the next stage",
        "Approve the current stage of a rollout that waits for approval (`approval: true`)."
        " Refused while the stage is still baking, with the time left.",
    ),
    CommandKind.PROMOTE: (
        "skip the remaining stages and send all traffic to the canary",
        "Promote a rollout: skip the remaining stages and shift 100% of traffic to the"
        " canary; the run ends promoted.",
    ),
    CommandKind.ROLLBACK: (
        "put all traffic back on stable; the run ends rolled back",
        "Roll a rollout back: the compensation path restores 100% stable traffic, and the"
        " run ends rolled back (Failed in the Temporal UI) with your reason.",
    ),
    CommandKind.ABORT: (
        "put all traffic back on stable; the run ends aborted, not failed",
        "Abort a rollout: stable gets 100% of traffic again, like a rollback, but the run"
        " ends aborted, which does not count as a failure of the release (a freeze, say).",
    ),
    CommandKind.RETRY: (
        "check the gates again at once after a pause by gates or by a deadline",
        "Retry a stage paused by its gates or by its progress deadline: the rollout resumes,"
        " the gates' inconclusive streaks start over and the gates are checked at once.",
    ),
    CommandKind.OVERRIDE: (
        "let the next traffic increase through a closed release window",
        "Override a release window for one increase: the rollout's next shift up (or its"
        " promotion) goes ahead now though its windows are closed. Who and why are kept in the"
        " audit trail and sent to the plan's channel; each further increase asks again.",
    ),
}

SERVICE_HELP = "the plan's service (its workflow id is rollout-SERVICE)"
TARGET_HELP = (
    "of a running release (release-SERVICE): act on this target's rollout only; without it"
    " the command acts on the whole release (approve: its next wave)"
)
ROUTER_OPTION: dict[str, Any] = {
    "choices": ["haproxy", "envoy", "flagd"],
    "default": "haproxy",
    "help": "what the demo plan moves: HAProxy's server weights, Envoy's weighted clusters"
    " (the load goes through Envoy), or a feature flag in a flagd file (DIR/flags.json) that"
    " the demo services evaluate per user id (default: %(default)s)",
}
KEY_HELP = (
    "the SSH private key that signs forward commands (default: $ROLLOUT_SIGNING_KEY, else"
    " ssh-agent's first key, else ~/.ssh/id_ed25519, else the dev stack's key)"
)
DIR_HELP = "the dev stack's folder: configs, logs, the Temporal database (default: %(default)s)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="rollout",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = root.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", **help_page("check a plan offline and name every wrong field"))
    p.add_argument("plan", help="the plan file (YAML); exit 2 when it is not valid")
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser(
        "init",
        **help_page("write a plan file from a template, with a comment on every field, to edit"),
        epilog=TEMPLATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("service", help="the service the plan rolls out")
    p.add_argument("--template", required=True, choices=list(TEMPLATES), help="the kind of rollout")
    p.add_argument(
        "--router",
        default="haproxy",
        choices=list(ROUTER_EXAMPLES),
        help="the traffic router (default: %(default)s)",
    )
    p.add_argument("--out", help="the file to write (default: SERVICE.yaml)")
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    p.set_defaults(run=cmd_init)

    p = sub.add_parser(
        "start", **help_page("start a rollout from a plan; print its workflow id and UI link")
    )
    p.add_argument("plan", help="the plan file (YAML); it is validated first")
    p.add_argument(
        "--follow",
        action="store_true",
        help="print progress until the rollout ends; exit 0 promoted, 3 rolled back, 4 aborted",
    )
    p.add_argument(
        "--task-queue",
        help="the workers' task queue (default: $ROLLOUT_TASK_QUEUE, else the dev stack's,"
        " else rollouts)",
    )
    p.add_argument("--key", help=KEY_HELP.replace("forward commands", "who started it"))
    p.set_defaults(run=cmd_start)

    p = sub.add_parser(
        "status",
        **help_page("show where a rollout stands: state, stage, weights, gates, audit trail"),
        epilog="Exit 0: the workflow answered. Exit 5: no worker answered within 2 s, and what"
        " is shown is Temporal's own records of the run (run state, the Rollout* search"
        " attributes, the last gate check and events in its history, the task queue's last"
        " poll). --watch keeps watching through a worker outage and ends with the rollout:"
        " 0 promoted, 3 rolled back, 4 aborted or cancelled, 1 terminated.",
    )
    p.add_argument("service", help=SERVICE_HELP)
    p.add_argument("--target", help="of a release: show this target's own rollout")
    p.add_argument(
        "--json",
        action="store_true",
        help='print the status as JSON, for scripts; "source" says "query" or "records"',
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="redraw until the rollout ends, through worker outages;"
        " exit 0 promoted, 3 rolled back, 4 aborted",
    )
    p.set_defaults(run=cmd_status)

    for kind in CommandKind:
        short, page = COMMAND_HELP[kind]
        p = sub.add_parser(
            kind.value,
            help=short,
            description=page + " The command is taken, or refused with the reason (exit 1).",
        )
        p.add_argument("service", help=SERVICE_HELP)
        p.add_argument("--target", help=TARGET_HELP)
        p.add_argument("--reason", default="", help="why; kept in the audit trail")
        p.add_argument(
            "--by", default=user_name(), help="who, for the audit trail (default: %(default)s)"
        )
        p.add_argument("--key", help=KEY_HELP)
        p.set_defaults(run=cmd_command, command=kind.value)

    p = sub.add_parser(
        "list",
        **help_page("list the running rollouts, or the workflows a visibility query matches"),
    )
    p.add_argument(
        "--query",
        help="a Temporal visibility query instead of the running rollouts, e.g."
        ' RolloutState="paused" or RolloutService="checkout"',
    )
    p.set_defaults(run=cmd_list)

    add_report_parser(sub, DIR_HELP)

    p = sub.add_parser(
        "setup", **help_page("register the Rollout* search attributes on the cluster, once")
    )
    p.set_defaults(run=cmd_setup)

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
    p.set_defaults(run=cmd_dev_up)
    p = dev.add_parser("down", **help_page("stop every process the dev stack started, by pid"))
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_dev_down)
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
        choices=["canary", "stable"],
        default="canary",
        help="which demo version misbehaves (default: %(default)s)",
    )
    p.add_argument("--dir", default=str(stack_dir()), help=DIR_HELP)
    p.set_defaults(run=cmd_dev_fault)

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
    p.set_defaults(run=cmd_demo)
    alert_commands.add_parser(sub)
    governance.add_parsers(sub, user_name())
    return root
