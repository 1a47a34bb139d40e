"""Release windows: when a rollout may add traffic, as plain arithmetic over UTC instants.

A plan's ``windows`` lists ``allow`` and ``deny`` entries. Each opens at the starts of a
weekly calendar (``days`` at ``start``) or of an RFC 5545 recurrence (``rrule``, expanded
by python-dateutil), in its IANA ``timezone``, for ``duration``. Traffic may increase at
``t`` when ``t`` lies in some allow window (or none is given) and in no deny window.

Zones are read from the pinned ``tzdata`` package, never from the machine, so the same
plan gives the same instants on every worker and in every replay. A start that falls in a
daylight-saving gap is read with the offset before the change (02:30 on a spring-forward
night is 03:30 summer time); a duration is elapsed time, not wall-clock time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from dateutil import rrule as recurrence
from pydantic import Field, field_validator, model_validator

from plans import text
from plans.durations import Duration, format_duration
from plans.text import Strict

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DURATION = timedelta(days=31)
MAX_WINDOWS = 50
HORIZON = timedelta(days=400)  # how far ahead an opening is looked for


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The zone from the pinned tzdata package; KeyError names an unknown zone."""
    parts = name.split("/")
    if not name or any(not p or p in (".", "..") for p in parts):
        raise KeyError(name)
    from importlib import resources  # only a plan with a time zone reads one

    try:
        data = resources.files("tzdata.zoneinfo").joinpath(*parts)
        with data.open("rb") as handle:
            return ZoneInfo.from_file(handle, key=name)
    except (OSError, ValueError) as error:
        raise KeyError(name) from error


def _clock(value: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as error:
        raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. 15:00") from error


class Window(Strict):
    """One allow or deny entry: a weekly calendar or an RFC 5545 recurrence, for a duration."""

    days: list[Day] | None = Field(default=None, description="weekly calendar: days it opens")
    start: str = Field(default="00:00", description="time of day it opens (HH:MM, local)")
    rrule: str | None = Field(
        default=None, max_length=500, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=TU"
    )
    duration: Duration
    timezone: Annotated[str, Field(max_length=60)] = "UTC"
    reason: str = Field(default="", max_length=500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except KeyError:
            raise ValueError(
                f"unknown time zone {text.clip(value, 60)!r}: use an IANA name such as"
                " Europe/Berlin or UTC"
            ) from None
        return value

    @field_validator("start")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _clock(value)
        return value

    @model_validator(mode="after")
    def _one_calendar(self) -> Window:
        if (self.days is None) == (self.rrule is None):
            raise ValueError("give either days (a weekly calendar) or rrule, not both or neither")
        if self.days is not None and not self.days:
            raise ValueError("days: list at least one day (mon..sun)")
        if not timedelta(0) < self.duration <= MAX_DURATION:
            raise ValueError(
                f"duration must be above 0 and at most {format_duration(MAX_DURATION)}"
            )
        if self.rrule is not None:
            self._parsed()
        return self

    def _parsed(self) -> recurrence.rrule:
        assert self.rrule is not None
        rule = self.rrule.removeprefix("RRULE:")
        if any(word in rule.upper() for word in ("DTSTART", "\n", "EXDATE", "RDATE")):
            raise ValueError("rrule: give one RRULE line; its first day is 2000-01-01")
        start = datetime.combine(date(2000, 1, 1), _clock(self.start))
        try:
            parsed = recurrence.rrulestr(rule, dtstart=start)
        except (ValueError, TypeError) as error:
            raise ValueError(f"rrule: {text.clip(str(error), 200)}") from None
        if not isinstance(parsed, recurrence.rrule):
            raise ValueError("rrule: give one RRULE line")
        return parsed

    def openings(self, since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The windows (start, end) in UTC that are open at some time in [since, until)."""
        tz = zone(self.timezone)
        first = (since - self.duration).astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
        last = until.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
        for local in self._local_starts(first, last):
            begin = local.replace(tzinfo=tz).astimezone(UTC)
            end = begin + self.duration
            if end > since and begin < until:
                yield begin, end

    def _local_starts(self, first: datetime, last: datetime) -> Iterator[datetime]:
        if self.rrule is not None:
            starts: list[datetime] = self._parsed().between(first, last, inc=True)
            yield from starts
            return
        assert self.days is not None
        wanted = {DAYS.index(d) for d in self.days}
        day, at = first.date(), _clock(self.start)
        while day <= last.date():
            if day.weekday() in wanted:
                yield datetime.combine(day, at)
            day += timedelta(days=1)

    def describe(self) -> str:
        if self.days is not None:
            when = f"{','.join(self.days)} {self.start}"
        else:
            when = f"rrule {self.rrule}"
        return f"{when} for {format_duration(self.duration)} {self.timezone}"


class Windows(Strict):
    """When traffic may increase: inside an allow window (if any) and outside every deny."""

    allow: list[Window] = Field(default_factory=list, max_length=MAX_WINDOWS)
    deny: list[Window] = Field(default_factory=list, max_length=MAX_WINDOWS)
    jitter: Duration = Field(
        default=timedelta(0), description="wait up to this long more after an opening"
    )

    @model_validator(mode="after")
    def _some(self) -> Windows:
        if not self.allow and not self.deny:
            raise ValueError("windows: list allow or deny entries, or remove windows")
        if not timedelta(0) <= self.jitter <= timedelta(hours=1):
            raise ValueError("jitter: between 0s and 1h")
        return self

    def zone_name(self) -> str:
        """The zone openings are shown in: the first entry's."""
        return next((w.timezone for w in [*self.allow, *self.deny]), "UTC")

    def denial(self, at: datetime) -> str:
        """Why traffic may not increase at ``at`` ('' when it may)."""
        for entry in self.deny:
            if any(True for _ in entry.openings(at, at + timedelta(microseconds=1))):
                return f"deny window {entry.describe()}" + (
                    f" ({entry.reason})" if entry.reason else ""
                )
        if self.allow and not any(
            any(True for _ in entry.openings(at, at + timedelta(microseconds=1)))
            for entry in self.allow
        ):
            return "outside every allow window"
        return ""

    def next_opening(self, after: datetime, horizon: timedelta = HORIZON) -> datetime | None:
        """The first instant at or after ``after`` when traffic may increase, or None."""
        if not self.denial(after):
            return after
        until = after + horizon
        candidates = {s for e in self.allow for s, _ in e.openings(after, until) if s >= after}
        candidates |= {end for e in self.deny for _, end in e.openings(after, until)}
        for moment in sorted(candidates):
            if moment <= until and not self.denial(moment):
                return moment
        return None

    def closing(self, at: datetime) -> datetime | None:
        """When the opening ``at`` lies in ends (the next deny start or allow end), if known."""
        until = at + HORIZON
        ends = [s for e in self.deny for s, _ in e.openings(at, until) if s > at]
        if self.allow:
            ends += [end for e in self.allow for s, end in e.openings(at, until) if s <= at]
        return min(ends, default=None)


def never_opens(windows: Windows, now: datetime) -> str:
    """A problem when the windows allow no increase in the year from ``now`` ('' if they do).

    Checked when a plan is loaded (not in the model: a run's validation must not depend on
    the day it replays).
    """
    if windows.next_opening(now, timedelta(days=366)) is None:
        return (
            "windows: the allow and deny windows never open in the coming year"
            " (deny covers every allow window): widen allow or narrow deny"
        )
    return ""


def opening_text(at: datetime, timezone: str) -> str:
    """``Tue 15:00 Europe/Berlin``: an instant as people in the window's zone read it."""
    local = at.astimezone(zone(timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {timezone}"
