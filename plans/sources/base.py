"""What every metrics source's plan model tells the rest of the rollout: its query language.

A gate's queries are text in the language of the plan's source. The gate knows which
placeholders it fills (``$target`` with the canary, then the stable); the source's language
knows how a query is written: which placeholders it accepts, how ``$window`` is spelled,
which spans of data a query reads, and the presets written in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar, Protocol

from plans import text
from plans.durations import format_duration
from plans.presets import Preset
from plans.text import Strict


class GateQueries(Protocol):
    """What a source reads of a gate (``plans.gates.base.GateBase`` has it all)."""

    @property
    def kind(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def samples_query(self) -> str | None: ...
    @property
    def window(self) -> timedelta: ...


class QueryLanguage(Protocol):
    """How one kind of source's queries are written."""

    name: str
    """What people call it, for messages (``PromQL``)."""
    placeholders: tuple[str, ...]
    """The placeholders a query may use beyond the plan's and the router's."""

    def duration(self, window: timedelta) -> str:
        """``window`` as ``$window`` stands for it in a query."""
        ...

    def windows(self, query: str, window: timedelta) -> list[tuple[str | None, float]]:
        """Each span of data the query reads: (as written, or None for ``$window``; seconds)."""
        ...


class SourceModel(Strict):
    """A plan's ``metrics`` section; each kind subclasses this with its fields and ``kind``."""

    language: ClassVar[QueryLanguage]
    presets: ClassVar[Mapping[str, Preset]] = {}

    def secret_variables(self) -> tuple[str, ...]:
        """Environment variables the worker reads this source's secrets from."""
        return ()

    def render(
        self, query: str, values: dict[str, str], *, window: timedelta, target: str | None = None
    ) -> str:
        """A gate's query with its placeholders filled in (values are validated safe names).

        ``$target`` is ``target``, the canary when None; ``$window`` is ``window`` written as
        this source's language writes a span. A missing value raises KeyError.
        """
        return text.fill(query, self.filled(values, window=window, target=target))

    def filled(
        self, values: dict[str, str], *, window: timedelta, target: str | None = None
    ) -> dict[str, str]:
        """Every placeholder's value for one version: the plan's, ``$window`` and ``$target``."""
        filled = dict(values)
        filled["window"] = self.language.duration(window)
        if target is not None:
            filled["target"] = target
        elif "canary" in values:
            filled["target"] = values["canary"]
        return filled

    def query_problems(self, gate: GateQueries, given: list[str]) -> list[tuple[str, str]]:
        """(field, problem) for each of the gate's queries this source cannot run.

        ``given`` are the placeholders the plan and its router fill in.
        """
        allowed = [*given, *self.language.placeholders]
        problems = []
        for field, query in (("query", gate.query), ("samples_query", gate.samples_query)):
            if query is None:
                continue
            if not query.strip():
                problems.append(
                    (field, f"the query is empty: write a {self.language.name} expression")
                )
                continue
            unknown = sorted(text.placeholders_in(query) - set(allowed))
            if unknown:
                shown = ", ".join("$" + p for p in allowed)
                named = text.some(
                    ["$" + (u if len(u) <= 40 else u[:40] + "\u2026") for u in unknown]
                )
                problems.append((field, f"unknown placeholder(s) {named}: use {shown}"))
        return problems

    def version_problems(self, gate: GateQueries) -> list[str]:
        """How a gate that compares versions fails to ask for each through ``$target``."""
        problems = []
        for field, query in (("query", gate.query), ("samples_query", gate.samples_query)):
            if query is None:
                continue
            named = text.placeholders_in(query)
            fixed = sorted(named & {"canary", "stable"})
            if fixed:
                problems.append(
                    f"{field}: write the version as $target (filled with the canary, then the"
                    f" stable), not {', '.join('$' + n for n in fixed)}"
                )
            elif "target" not in named:
                problems.append(
                    f"{field}: a {gate.kind} gate's query must select the version with $target"
                    " (filled with the canary, then the stable)"
                )
        return problems

    def windows(self, gate: GateQueries) -> list[tuple[str, str, float]]:
        """(field, window as shown, seconds) of each span of data the gate's queries read."""
        found = []
        for field, query in (("query", gate.query), ("samples_query", gate.samples_query)):
            for written, seconds in self.language.windows(query or "", gate.window):
                if written is None:
                    found.append(("window", format_duration(gate.window), seconds))
                else:
                    found.append((field, written, seconds))
        return found
