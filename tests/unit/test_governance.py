"""The freeze and schedule commands' input checks and the status line of a waiting rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from plans import RolloutError, RolloutState, RolloutStatus
from plans.governance.freezes import Freeze, FreezeRequest, freeze_holding
from starter import governance
from starter.cli import run_command
from starter.render import headline, window_line


def test_cron_and_at_schedules_are_read_in_their_zone() -> None:
    spec = governance.schedule_spec(None, "0 15 * * TUE", "Europe/Berlin")
    assert spec.cron_expressions == ["0 15 * * TUE"] and spec.time_zone_name == "Europe/Berlin"
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT15:00")
    once = governance.schedule_spec(later, None, "Europe/Berlin")
    entry = once.calendars[0]
    assert entry.hour[0].start == 15 and entry.year[0].start == int(later[:4])


@pytest.mark.parametrize(
    ("at", "cron", "tz", "says"),
    [
        (None, None, "UTC", "give --at TIME or --cron EXPR"),
        ("2026-12-01T15:00", "0 15 * * *", "UTC", "give --at TIME or --cron EXPR"),
        (None, "0 15 * *", "UTC", "five fields"),
        (None, "0 15 * * TUE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("2001-01-01T00:00", None, "UTC", "that time has passed"),
        ("next tuesday", None, "UTC", "is not a date and time"),
    ],
)
def test_bad_schedules_say_what_to_fix(
    at: str | None, cron: str | None, tz: str, says: str
) -> None:
    with pytest.raises(RolloutError, match=says):
        governance.schedule_spec(at, cron, tz)


def test_freeze_requests_need_an_order_a_zone_and_a_safe_service() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="--until must be after --from"):
        FreezeRequest(service="checkout", start=now, end=now, reason="x")
    with pytest.raises(ValidationError, match="with a zone"):
        FreezeRequest(
            service="checkout", start=datetime(2026, 1, 1), end=datetime(2026, 1, 2), reason="x"
        )
    with pytest.raises(ValidationError):
        FreezeRequest(service="check out;", start=now, end=now + timedelta(hours=1), reason="x")


def test_the_freeze_that_ends_last_holds() -> None:
    now = datetime(2026, 12, 20, tzinfo=UTC)

    def freeze(service: str, hours: int) -> Freeze:
        return Freeze(
            id=f"{service}{hours}",
            service=service,
            start=now,
            end=now + timedelta(hours=hours),
            reason="r",
            added_at=now,
        )

    freezes = [freeze("checkout", 2), freeze("*", 5), freeze("payments", 9)]
    held = freeze_holding(freezes, "checkout", now + timedelta(hours=1))
    assert held is not None and held.id == "*5"
    assert freeze_holding(freezes, "checkout", now + timedelta(hours=6)) is None


def test_freeze_add_without_a_service_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(["freeze", "add", "--until", "2030-01-01T00:00", "--reason", "x"])
    assert code == 1
    assert "give --service SERVICE or --all" in capsys.readouterr().err


def test_status_shows_the_next_opening_and_time_left() -> None:
    as_of = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    status = RolloutStatus(
        service="checkout",
        version="v2",
        state=RolloutState.WAITING_FOR_WINDOW,
        stage_index=0,
        stage_name="canary",
        stage_count=2,
        canary_weight=10,
        paused=False,
        bake_total_s=3600,
        bake_elapsed_s=3600,
        bake_remaining_s=0,
        awaiting_approval=False,
        as_of=as_of,
        window_hold="outside every allow window",
        window_opens_at=as_of + timedelta(hours=2, minutes=30),
    )
    line = window_line(status)
    assert line == (
        "next increase waits: outside every allow window; opens Tue 2026-11-24 14:30 UTC (in 2h30m)"
    )
    assert "waiting for window" in headline(status).plain
    assert line in headline(status).plain
