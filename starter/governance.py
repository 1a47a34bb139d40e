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
from plans.governance.freezes import (
    ALL_SERVICES,
    FreezeRemoval,
    FreezeRequest,
)
from plans.governance.windows import zone
from plans.runtime.inputs import ScheduledRollout
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
    if args.json:
        from starter.answers import FreezeAnswer, dump

    if request is not None:
        freeze = await add_freeze(client, request, queue)
        if args.json:
            print(dump(FreezeAnswer(action="add", freeze=freeze, freezes=[], removals=[])))
        else:
            out.print(f"added {escape(freeze.describe())}, from {freeze.start:%Y-%m-%d %H:%M} UTC")
    elif args.action == "remove":
        removal = FreezeRemoval(id=args.id, by=args.by, reason=args.reason)
        freeze = await remove_freeze(client, removal, queue, args.key)
        if args.json:
            print(dump(FreezeAnswer(action="remove", freeze=freeze, freezes=[], removals=[])))
        else:
            out.print(f"removed {escape(freeze.describe())}")
    else:
        freezes = await calendar_freezes(client)
        removals = (await recent_removals(client))[-5:]
        if args.json:
            listed = FreezeAnswer(action="list", freeze=None, freezes=freezes, removals=removals)
            print(dump(listed))
            return 0
        for f in freezes:
            out.print(f"{escape(f.describe())} from {f.start:%Y-%m-%d %H:%M} UTC, by {f.by}")
        if not freezes:
            out.print("no freezes")
        for removed in removals:
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
    from starter.answers import ScheduleAnswer, ScheduleLine, dump

    if args.target == "list":
        found = await schedules.listed(client)
        if args.json:
            lines = [ScheduleLine(schedule_id=i, next_start=upcoming) for i, upcoming in found]
            print(
                dump(
                    ScheduleAnswer(
                        action="list", schedule_id=None, first_start=None, schedules=lines
                    )
                )
            )
            return 0
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
        if args.json:
            deleted = ScheduleAnswer(
                action="delete", schedule_id=args.schedule_id, first_start=None, schedules=[]
            )
            print(dump(deleted))
        else:
            out.print(f"deleted {args.schedule_id}")
        return 0
    scheduled = ScheduledRollout(plan=plan, task_queue=args.task_queue or task_queue())
    schedule_id = await schedules.create(client, scheduled, spec, once=args.at is not None)
    start = await schedules.first_start(client, schedule_id)
    if args.json:
        created = ScheduleAnswer(
            action="create", schedule_id=schedule_id, first_start=start, schedules=[]
        )
        print(dump(created))
        return 0
    first = f"; first start {start:%Y-%m-%d %H:%M} UTC" if start else ""
    out.print(f"scheduled {schedule_id}{first}")
    return 0
