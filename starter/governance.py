"""`rollout freeze add|list|remove` and `rollout schedule PLAN|list|delete`.

Freezes live in the ``FreezeCalendar`` workflow (id ``rollout-freezes``), started by the
first ``freeze add``; schedules are Temporal Schedules that run ``ScheduledStart``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from temporalio.client import (
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
)

from client import schedules
from client.connection import task_queue
from client.freezes import add_freeze, calendar_freezes, recent_removals, remove_freeze
from plans import RolloutError
from plans.freezes import (
    ALL_SERVICES,
    FreezeRemoval,
    FreezeRequest,
)
from plans.inputs import ScheduledRollout
from plans.windows import zone
from starter.render import out
from starter.server import connect_client


def moment(text: str, tz: str) -> datetime:
    """``2026-12-01T15:00`` in ``tz`` (or with its own offset) as an aware datetime."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise RolloutError(f"{text!r} is not a date and time: write 2026-12-01T15:00") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=known_zone(tz))


def known_zone(tz: str) -> Any:
    try:
        return zone(tz)
    except KeyError:
        raise RolloutError(
            f"unknown time zone {tz!r}: use an IANA name such as Europe/Berlin"
        ) from None


# -- freezes ---------------------------------------------------------------------------------


def freeze_request(args: argparse.Namespace) -> FreezeRequest:
    """`freeze add`'s options as a request, or an error saying what to fix."""
    if bool(args.service) == args.all:
        raise RolloutError("freeze add: give --service SERVICE or --all")
    if not args.reason or not args.until:
        raise RolloutError("freeze add: give --until and --reason")
    start = moment(args.start, args.tz) if args.start else datetime.now(UTC)
    try:
        return FreezeRequest(
            service=ALL_SERVICES if args.all else args.service,
            start=start,
            end=moment(args.until, args.tz),
            reason=args.reason,
            by=args.by,
        )
    except ValueError as error:
        raise RolloutError(f"freeze add: {error}") from None


async def cmd_freeze(args: argparse.Namespace) -> int:
    request = freeze_request(args) if args.action == "add" else None
    if args.action == "remove" and not args.id:
        raise RolloutError("freeze remove: give the freeze's id (`rollout freeze list`)")
    client = await connect_client()
    queue = args.task_queue or task_queue()
    if request is not None:
        freeze = await add_freeze(client, request, queue)
        out.print(f"added {escape(freeze.describe())}, from {freeze.start:%Y-%m-%d %H:%M} UTC")
    elif args.action == "remove":
        removal = FreezeRemoval(id=args.id, by=args.by, reason=args.reason)
        freeze = await remove_freeze(client, removal, queue, args.key)
        out.print(f"removed {escape(freeze.describe())}")
    else:
        freezes = await calendar_freezes(client)
        for f in freezes:
            out.print(f"{escape(f.describe())} from {f.start:%Y-%m-%d %H:%M} UTC, by {f.by}")
        if not freezes:
            out.print("no freezes")
        for removed in (await recent_removals(client))[-5:]:
            out.print(f"{removed.at:%Y-%m-%d %H:%M} UTC: {escape(removed.describe())}")
    return 0


# -- schedules -------------------------------------------------------------------------------


def schedule_spec(at: str | None, cron: str | None, tz: str) -> ScheduleSpec:
    """A one-off calendar entry at ``at`` or a cron expression, both read in ``tz``."""
    known_zone(tz)
    if (at is None) == (cron is None):
        raise RolloutError("schedule: give --at TIME or --cron EXPR")
    if cron is not None:
        if len(cron.split()) != 5:
            raise RolloutError(f"--cron {cron!r}: five fields, e.g. '0 15 * * TUE'")
        return ScheduleSpec(cron_expressions=[cron], time_zone_name=tz)
    local = moment(at or "", tz).astimezone(known_zone(tz))
    if local <= datetime.now(UTC):
        raise RolloutError(f"--at {at}: that time has passed")
    entry = ScheduleCalendarSpec(
        year=[ScheduleRange(local.year)],
        month=[ScheduleRange(local.month)],
        day_of_month=[ScheduleRange(local.day)],
        hour=[ScheduleRange(local.hour)],
        minute=[ScheduleRange(local.minute)],
        second=[ScheduleRange(0)],
        day_of_week=[ScheduleRange(0, 6)],
    )
    return ScheduleSpec(calendars=[entry], time_zone_name=tz)


async def cmd_schedule(args: argparse.Namespace) -> int:
    from starter.rollout_commands import load

    if args.target not in ("list", "delete"):
        plan = load(args.target)
        spec = schedule_spec(args.at, args.cron, args.tz)
    client = await connect_client()
    if args.target == "list":
        found = await schedules.listed(client)
        for schedule_id, upcoming in found:
            when = f"next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else "no more starts"
            out.print(f"{schedule_id}  {when}")
        if not found:
            out.print("no schedules")
        return 0
    if args.target == "delete":
        if not args.schedule_id:
            raise RolloutError("schedule delete: give the schedule's id (`rollout schedule list`)")
        await schedules.delete(client, args.schedule_id)
        out.print(f"deleted {args.schedule_id}")
        return 0
    scheduled = ScheduledRollout(plan=plan, task_queue=args.task_queue or task_queue())
    schedule_id = await schedules.create(client, scheduled, spec, once=args.at is not None)
    start = await schedules.first_start(client, schedule_id)
    first = f"; first start {start:%Y-%m-%d %H:%M} UTC" if start else ""
    out.print(f"scheduled {schedule_id}{first}")
    return 0


def add_parsers(sub: Any, by: str) -> None:
    """The freeze and schedule commands, for `rollout`'s parser."""
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
    p.set_defaults(run=cmd_freeze)

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
    p.set_defaults(run=cmd_schedule)
