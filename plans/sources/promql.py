"""PromQL as gates write it: how ``$window`` is spelled, and which spans of data a query reads."""

from __future__ import annotations

import re
from datetime import timedelta

# String literals are dropped before looking for range selectors: a regex matcher such as
# code=~"5[0-9]+" has brackets that are not a window.
_QUOTES = re.compile("[\"'`]")
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class PromQL:
    """The query language of Prometheus (and of the servers that speak its HTTP API)."""

    name = "PromQL"
    placeholders: tuple[str, ...] = ("target", "window")

    def duration(self, window: timedelta) -> str:
        return promql_duration(window)

    def windows(self, query: str, window: timedelta) -> list[tuple[str | None, float]]:
        """Each range selector's window: (``[1m]`` as written, or None for $window; seconds)."""
        found: list[tuple[str | None, float]] = []
        for written in range_windows(query):
            if written in ("$window", "${window}"):
                found.append((None, window.total_seconds()))
            elif _DURATION.match(written):
                seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(written))
                found.append((f"[{written}]", seconds))
        return found


def promql_duration(value: timedelta) -> str:
    """A duration written the way PromQL accepts it in a range selector (one unit)."""
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def range_windows(query: str) -> list[str]:
    """The range selectors' windows in a query, as written (``1m``, ``$window``).

    A selector is ``[`` up to the next ``]``; its window is what comes before any ``:``
    (a subquery's resolution), without spaces. Scanned, not matched with a regex: one that
    backtracks takes seconds on a query of a few thousand brackets or spaces.
    """
    text = _without_strings(query)
    found = []
    start = text.find("[")
    while start != -1:
        end = text.find("]", start + 1)
        if end == -1:
            break
        window = text[start + 1 : end].split(":", 1)[0].strip()
        if window:
            found.append(window)
        start = text.find("[", end + 1)
    return found


def _without_strings(query: str) -> str:
    """The query with each string literal ("...", '...' with backslash escapes, `...`) as "".

    A quote with no closing one is left as it is. Linear: when a quote finds no closing one,
    neither does any quote of its kind up to where that search stopped.
    """
    parts = []
    done = 0  # query[:done] is in parts
    dead_until = {'"': 0, "'": 0, "`": 0}  # a quote of this kind before here never closes
    found = _QUOTES.search(query)
    while found is not None:
        start = found.start()
        quote = query[start]
        end = -1 if start < dead_until[quote] else _closing(query, start, quote)
        if end < 0:
            dead_until[quote] = max(dead_until[quote], -end)
            found = _QUOTES.search(query, start + 1)
            continue
        parts += [query[done:start], '""']
        done = end + 1
        found = _QUOTES.search(query, done)
    parts.append(query[done:])
    return "".join(parts)


def _closing(query: str, start: int, quote: str) -> int:
    """Where the string opened at ``start`` closes, or minus where the search for it stopped."""
    if quote == "`":
        end = query.find("`", start + 1)
        return end if end >= 0 else -len(query)
    i = start + 1
    while i < len(query):
        char = query[i]
        if char == quote:
            return i
        if char == "\\":
            # An escape is a backslash and any character but a line break (regex's "\\.").
            if i + 1 == len(query) or query[i + 1] == "\n":
                return -i
            i += 2
        else:
            i += 1
    return -len(query)
