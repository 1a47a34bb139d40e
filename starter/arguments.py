"""The `rollout` command line: its commands, their options and help, and its exit codes.

Building it imports no command's code (``starter.parsing``): each command names the function
that runs it, imported when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from client.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, user_name
from client.connection import DEFAULT_STACK_DIR as DEFAULT_DIR
from starter import subcommands
from starter.exits import (
    EXIT_ABORTED,
    EXIT_ERROR,
    EXIT_FROM_RECORDS,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_PROMOTED,
    EXIT_ROLLED_BACK,
)
from starter.parsing import Command, LazyChoices, OneCommand, Parser, add_json, help_page

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
COMMAND_HELP: dict[str, tuple[str, str]] = {
    "pause": (
        "stop the bake clock and the progression (gates are still checked)",
        "Pause a rollout: the bake clock and the progression stop until `rollout resume`."
        " Gates are still checked while paused, and a failing gate still rolls back.",
    ),
    "resume": (
        "continue a paused rollout where it stopped",
        "Resume a paused rollout: the bake clock runs again from where it stopped. After a"
        " pause by the gates or a deadline, `rollout retry` also checks the gates at once.",
    ),
    "approve": (
        "let a stage that waits for approval go on to the next stage",
        "Approve the current stage of a rollout that waits for approval (`approval: true`)."
        " Refused while the stage is still baking, with the time left.",
    ),
    "promote": (
        "skip the remaining stages and send all traffic to the canary",
        "Promote a rollout: skip the remaining stages and shift 100% of traffic to the"
        " canary; the run ends promoted.",
    ),
    "rollback": (
        "put all traffic back on stable; the run ends rolled back",
        "Roll a rollout back: the compensation path restores 100% stable traffic, and the"
        " run ends rolled back (Failed in the Temporal UI) with your reason.",
    ),
    "abort": (
        "put all traffic back on stable; the run ends aborted, not failed",
        "Abort a rollout: stable gets 100% of traffic again, like a rollback, but the run"
        " ends aborted, which does not count as a failure of the release (a freeze, say).",
    ),
    "retry": (
        "check the gates again at once after a pause by gates or by a deadline",
        "Retry a stage paused by its gates or by its progress deadline: the rollout resumes,"
        " the gates' inconclusive streaks start over and the gates are checked at once.",
    ),
    "override": (
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
KEY_HELP = (
    "the SSH private key that signs forward commands (default: $ROLLOUT_SIGNING_KEY, else"
    " ssh-agent's first key, else ~/.ssh/id_ed25519, else the dev stack's key)"
)


def _templates() -> list[str]:
    from plans.templates import TEMPLATES

    return list(TEMPLATES)


def _routers() -> list[str]:
    from starter.plan_init import ROUTER_EXAMPLES

    return list(ROUTER_EXAMPLES)


def _template_help() -> str:
    from starter.plan_init import TEMPLATE_HELP

    return TEMPLATE_HELP


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``command`` (the first word of a command line)
    only of that one when it is a command (see OneCommand): the same parse of such a line."""
    root = Parser(
        prog="rollout",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    every = root.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub: Any = every if command is None else OneCommand(every, command)

    p = sub.add_parser("validate", **help_page("check a plan offline and name every wrong field"))
    p.add_argument("plan", help="the plan file (YAML); exit 2 when it is not valid")
    power = p.add_mutually_exclusive_group()
    power.add_argument(
        "--traffic",
        type=float,
        metavar="RPS",
        help="the canary's requests a second: print, per stage, the smallest regression each"
        " comparing gate can detect within its bake, and warn where it cannot see errors x2"
        " or latency +20%%",
    )
    power.add_argument(
        "--live",
        action="store_true",
        help="the same, with the traffic, the stable's rate and buckets read now from the"
        " gates' Prometheus",
    )
    p.add_argument(
        "--base-rate",
        type=float,
        default=0.01,
        metavar="RATE",
        help="the stable's error rate assumed for rate gates (default: %(default)s)",
    )
    add_json(p, "the plan's stages (or a release's waves), or its problems")
    p.set_defaults(run=Command("starter.plan_commands:cmd_validate"))

    p = sub.add_parser(
        "init",
        **help_page("write a plan file from a template, with a comment on every field, to edit"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.epilog_from = _template_help
    p.add_argument("service", help="the service the plan rolls out")
    # A metavar, so that argparse reads the choices only when it checks or shows them.
    p.add_argument(
        "--template",
        required=True,
        choices=LazyChoices(_templates),
        metavar="TEMPLATE",
        help="the kind of rollout: %(choices)s",
    )
    p.add_argument(
        "--router",
        default="haproxy",
        choices=LazyChoices(_routers),
        metavar="ROUTER",
        help="the traffic router: %(choices)s (default: %(default)s)",
    )
    p.add_argument("--out", help="the file to write (default: SERVICE.yaml)")
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    add_json(p, "the file written and its template")
    p.set_defaults(run=Command("starter.plan_init:cmd_init"))

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
    p.add_argument(
        "--json",
        action="store_true",
        help="print the run started as one JSON object; with --follow, one JSON object a line"
        " (JSON Lines): the start, then the status at each change (schema: docs/json.md)",
    )
    p.set_defaults(run=Command("starter.rollout_commands:cmd_start"))

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
        help='print the status as JSON, for scripts; "source" says "query", "records" or'
        ' "release" (schema: docs/json.md)',
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="redraw until the rollout ends, through worker outages;"
        " exit 0 promoted, 3 rolled back, 4 aborted",
    )
    p.set_defaults(run=Command("starter.rollout_commands:cmd_status"))

    for kind, (short, page) in COMMAND_HELP.items():
        p = sub.add_parser(
            kind,
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
        if kind == "promote":
            p.add_argument(
                "--variant",
                default="",
                help="of a running experiment: the variant to roll forward to 100%%",
            )
        add_json(p, "the command's record (who, verified or not, where it went)")
        p.set_defaults(run=Command("starter.rollout_commands:cmd_command"), command=kind)

    p = sub.add_parser(
        "list",
        **help_page("list the running rollouts, or the workflows a visibility query matches"),
    )
    p.add_argument(
        "--query",
        help="a Temporal visibility query instead of the running rollouts, e.g."
        ' RolloutState="paused" or RolloutService="checkout"',
    )
    add_json(p, "the rollouts found")
    p.set_defaults(run=Command("starter.rollout_commands:cmd_list"))

    p = sub.add_parser(
        "setup", **help_page("register the Rollout* search attributes on the cluster, once")
    )
    add_json(p, "the search attributes added")
    p.set_defaults(run=Command("starter.rollout_commands:cmd_setup"))

    subcommands.add_parsers(sub, by=user_name())
    if isinstance(sub, OneCommand) and not sub.found:
        return parser()  # not a command: its error lists them all
    return root
