"""Release-window arithmetic and validation, without Temporal."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plans import PlanError, parse_plan
from plans.governance.windows import Windows, never_opens, opening_text, zone

BERLIN_TUESDAY = {
    "days": ["tue"],
    "start": "15:00",
    "duration": "2h",
    "timezone": "Europe/Berlin",
    "reason": "release slot",
}


def windows(**data: Any) -> Windows:
    return Windows.model_validate(data)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_allow_window_opens_on_its_day_in_its_zone() -> None:
    w = windows(allow=[BERLIN_TUESDAY])
    # Sunday 22 Nov 2026 (CET, UTC+1): next Tuesday 15:00 Berlin is 14:00 UTC.
    opens = w.next_opening(utc(2026, 11, 22, 20, 0))
    assert opens == utc(2026, 11, 24, 14, 0)
    assert opening_text(opens, "Europe/Berlin") == "Tue 2026-11-24 15:00 Europe/Berlin"
    assert w.denial(utc(2026, 11, 24, 14, 30)) == ""
    assert w.denial(utc(2026, 11, 24, 16, 0)) == "outside every allow window"
    assert w.closing(utc(2026, 11, 24, 14, 30)) == utc(2026, 11, 24, 16, 0)


def test_the_same_local_time_moves_in_utc_across_a_dst_change() -> None:
    w = windows(allow=[BERLIN_TUESDAY])
    # Summer time (UTC+2) ends on Sunday 25 Oct 2026.
    assert w.next_opening(utc(2026, 10, 19, 0, 0)) == utc(2026, 10, 20, 13, 0)
    assert w.next_opening(utc(2026, 10, 21, 0, 0)) == utc(2026, 10, 27, 14, 0)


def test_a_start_in_the_spring_forward_gap_reads_the_offset_before_it() -> None:
    w = windows(
        allow=[{"days": ["sun"], "start": "02:30", "duration": "1h", "timezone": "Europe/Berlin"}]
    )
    # 29 Mar 2026 02:30 does not exist in Berlin; read as +01:00, it is 01:30 UTC.
    assert w.next_opening(utc(2026, 3, 28, 0, 0)) == utc(2026, 3, 29, 1, 30)


def test_deny_window_from_an_rrule_holds_inside_an_allow_window() -> None:
    w = windows(
        allow=[
            {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "09:00",
                "duration": "8h",
                "timezone": "Europe/Berlin",
            }
        ],
        deny=[
            {
                "rrule": "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
                "duration": "3d",
                "timezone": "Europe/Berlin",
                "reason": "holidays",
            }
        ],
    )
    assert "holidays" in w.denial(utc(2026, 12, 24, 10, 0))
    # Thu 24 to Sat 26 Dec denied, then the weekend: Monday 28 Dec 09:00 Berlin.
    assert w.next_opening(utc(2026, 12, 24, 10, 0)) == utc(2026, 12, 28, 8, 0)


def test_deny_only_windows_open_when_the_deny_window_ends() -> None:
    w = windows(
        deny=[
            {"days": ["fri"], "start": "16:00", "duration": "64h", "timezone": "America/New_York"}
        ]
    )
    friday_evening = utc(2026, 11, 27, 22, 0)  # 17:00 in New York (UTC-5)
    assert w.denial(friday_evening).startswith("deny window fri 16:00")
    assert w.next_opening(friday_evening) == utc(2026, 11, 30, 13, 0)  # Mon 08:00 New York
    assert w.next_opening(utc(2026, 11, 25, 12, 0)) == utc(2026, 11, 25, 12, 0)


def test_rrule_with_its_own_hours() -> None:
    w = windows(
        allow=[
            {
                "rrule": "FREQ=WEEKLY;BYDAY=TU,TH;BYHOUR=10;BYMINUTE=30",
                "duration": "1h",
                "timezone": "Asia/Tokyo",
            }
        ]
    )
    # Tue 24 Nov 10:30 Tokyo (UTC+9) is 01:30 UTC; at 03:00 UTC it has closed: Thursday.
    assert w.next_opening(utc(2026, 11, 23, 0, 0)) == utc(2026, 11, 24, 1, 30)
    assert w.next_opening(utc(2026, 11, 24, 3, 0)) == utc(2026, 11, 26, 1, 30)


def test_zones_come_from_the_pinned_tzdata_package() -> None:
    import tzdata

    assert zone("Europe/Berlin").key == "Europe/Berlin"
    assert tzdata.IANA_VERSION  # the data the zones were read from
    with pytest.raises(KeyError):
        zone("../../etc/passwd")


def test_windows_that_never_open_are_named() -> None:
    w = windows(
        allow=[BERLIN_TUESDAY],
        deny=[{"days": ["tue"], "start": "14:00", "duration": "4h", "timezone": "Europe/Berlin"}],
    )
    assert w.next_opening(utc(2026, 11, 22, 0, 0)) is None
    assert "never open" in never_opens(w, utc(2026, 11, 22, 0, 0))


PLAN: dict[str, Any] = {
    "service": "checkout",
    "stable": "a",
    "canary": "b",
    "router": {"kind": "haproxy", "runtime_api": "/tmp/h.sock", "backend": "app"},
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
    "stages": [{"name": "s", "weight": 10}],
}


def plan_with(windows_data: Any) -> Any:
    data = copy.deepcopy(PLAN)
    data["windows"] = windows_data
    return parse_plan(data)


def problems(windows_data: Any) -> str:
    with pytest.raises(PlanError) as error:
        plan_with(windows_data)
    return str(error.value)


def test_a_plan_with_windows_loads() -> None:
    plan = plan_with({"allow": [BERLIN_TUESDAY], "jitter": "5m"})
    assert plan.windows is not None and plan.windows.jitter == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({**BERLIN_TUESDAY, "timezone": "Europe/Berlln"}, "unknown time zone 'Europe/Berlln'"),
        ({**BERLIN_TUESDAY, "start": "25:00"}, "not a time of day"),
        ({**BERLIN_TUESDAY, "days": ["tuesday"]}, "allow.0.days.0"),
        ({**BERLIN_TUESDAY, "days": []}, "list at least one day"),
        ({**BERLIN_TUESDAY, "rrule": "FREQ=DAILY"}, "either days"),
        ({"rrule": "FREQ=SOMETIMES", "duration": "1h"}, "rrule:"),
        ({"rrule": "FREQ=DAILY\nRDATE:20260101", "duration": "1h"}, "one RRULE line"),
        ({**BERLIN_TUESDAY, "duration": "40d"}, "at most 31d"),
        ({**BERLIN_TUESDAY, "color": "red"}, "unknown field"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(entry: dict[str, Any], says: str) -> None:
    text = problems({"allow": [entry]})
    assert "windows.allow.0" in text and says in text


def test_empty_windows_and_closed_windows_are_refused() -> None:
    assert "list allow or deny" in problems({})
    closed = {
        "allow": [BERLIN_TUESDAY],
        "deny": [{"days": ["mon", "tue"], "duration": "31d", "timezone": "UTC"}],
    }
    assert "never open in the coming year" in problems(closed)
