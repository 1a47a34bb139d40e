"""Durations as people write them in plans: ``30s``, ``10m``, ``48h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
MAX_DURATION = timedelta(days=365)
MAX_DURATION_CHARS = 64  # "1w6d23h59m59s999ms" is 18


def _shown(value: object) -> str:
    # Error messages quote a value by its start, so a huge one cannot make a huge message.
    if isinstance(value, str):
        if len(value) <= MAX_DURATION_CHARS:
            return repr(value)
        return f"{value[:20]!r}\u2026 ({len(value):,} characters)"
    if isinstance(value, int) and abs(value) > 10**18:
        return f"a number of about {round(value.bit_length() * math.log10(2)):,} digits"
    if isinstance(value, int | float | timedelta):
        return repr(value)
    return f"a {type(value).__name__}"


def parse_duration(value: Any) -> timedelta:
    """Read ``30s``/``10m``/``48h``/``7d`` (or combinations like ``1h30m``) as a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration is written like 30s, 10m, 48h or 7d, not true/false")
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float: longer than a year anyway
            seconds = math.inf if value > 0 else -math.inf
    elif isinstance(value, str):
        if len(value) > MAX_DURATION_CHARS:
            raise ValueError(
                f"{_shown(value)} is too long for a duration (at most {MAX_DURATION_CHARS}"
                " characters): write a number and a unit, like 30s, 10m, 48h or 7d"
            )
        text = value.strip().lower().replace(" ", "")
        if not _WHOLE.match(text):
            raise ValueError(
                f"{value!r} is not a duration: write a number and a unit, like 30s, 10m, 48h or 7d"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    else:
        raise ValueError(f"{_shown(value)} is not a duration: write it like 30s, 10m, 48h or 7d")
    if seconds != seconds:
        raise ValueError(f"{_shown(value)} is not a number: write it like 30s, 10m, 48h or 7d")
    if seconds < 0:
        raise ValueError(f"{_shown(value)} is negative: a duration must be 0 or more")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{_shown(value)} is longer than a year: split the rollout or shorten it")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float) -> str:
    """Write a duration back the way a plan would: ``1d2h``, ``10m``, ``1.5s``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 59.95 and seconds != int(seconds):
        return f"{seconds:.1f}s" if seconds >= 0.1 else f"{seconds:.3f}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"


def _exact(value: timedelta) -> str:
    # Serialized plans must read back to the same duration, so fractions stay exact here.
    seconds = value.total_seconds()
    if seconds == int(seconds):
        return format_duration(value)
    return f"{seconds:.6f}".rstrip("0") + "s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_exact, return_type=str, when_used="json"),
]
