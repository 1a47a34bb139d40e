"""How a check reads its metrics source: queries rendered for a version, run with the retry policy.

Retry policy: a query that could not reach the source is retried here a few times with
a short backoff (a restarting Prometheus, a proxy's 502). If the source stays down, that
gate and every later gate in the same check are reported INCONCLUSIVE with the reason,
without waiting on the source again. The activity itself then succeeds, so the workflow
sees the outage as data and applies its own policy at the next check; Temporal retries
would only delay that. Timeouts are not retried: the source has had its full budget.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from activities.errors import MetricsError, MetricsTimeout, MetricsUnavailable
from activities.judge.measurements import Side
from activities.metrics import MetricProvider, Reading, Series
from plans import GateBase, GateCheck, MetricsSource

ATTEMPTS = 3
BACKOFF_S: tuple[float, ...] = (0.25, 0.75)
T = TypeVar("T")


def time_budget(check: GateCheck) -> timedelta:
    """An upper bound on one check: every query slow, plus one query's retries and backoff."""
    backoff = sum(BACKOFF_S[: ATTEMPTS - 1])
    slowest = max(
        [check.source, *(check.source_for(gate) for gate in check.gates)],
        key=lambda source: source.timeout,
    ).timeout.total_seconds()
    queries = sum(
        gate.queries_per_check * check.source_for(gate).timeout.total_seconds()
        for gate in check.gates
    )
    return timedelta(seconds=queries + ATTEMPTS * slowest + backoff)


class MissingPlaceholder(Exception):
    """A query names a placeholder the check has no value for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Reader:
    """One check's access to its source; once the source is found down, answers that at once."""

    def __init__(
        self,
        provider: MetricProvider,
        source: MetricsSource,
        values: dict[str, str],
        sleep: Callable[[float], None],
        started_at: datetime | None = None,
        span: timedelta | None = None,
    ) -> None:
        self.provider = provider
        self.started_at = started_at  # the stage's start, for gates reading all of it
        self.span = span  # the stage's planned bake from its start
        self.source = source
        self.values = values
        self.sleep = sleep
        self.down = ""

    def value(self, name: str) -> str:
        """The value of a placeholder (``canary``, ``stable``)."""
        try:
            return self.values[name]
        except KeyError:
            raise MissingPlaceholder(name) from None

    def query(
        self, gate: GateBase, *, target: str | None = None, window: timedelta | None = None
    ) -> str:
        """The gate's query for one version (``target``; the canary when None)."""
        return self._rendered(gate.query, gate, target, window)

    def samples_query(
        self, gate: GateBase, *, target: str | None = None, window: timedelta | None = None
    ) -> str | None:
        """The gate's samples query for one version, or None when it has none."""
        if gate.samples_query is None:
            return None
        return self._rendered(gate.samples_query, gate, target, window)

    def _rendered(
        self, query: str, gate: GateBase, target: str | None, window: timedelta | None
    ) -> str:
        try:
            return self.source.render(
                query, self.values, window=window or gate.window, target=target
            )
        except KeyError as missing:
            raise MissingPlaceholder(str(missing.args[0])) from None

    def instant_side(self, gate: GateBase, *, target: str | None = None) -> Side:
        """One version's value now and, when the gate counts them, its requests."""
        reading = self.instant(self.query(gate, target=target))
        samples_query = self.samples_query(gate, target=target)
        if samples_query is None:
            return Side(value=reading.value, reason=reading.reason)
        counted = self.instant(samples_query)
        return Side(
            value=reading.value,
            reason=reading.reason,
            samples=counted.value,
            samples_reason=counted.reason,
        )

    def instant(self, query: str) -> Reading:
        """The query's value now, or none and why."""
        return self._ask(lambda: self.provider.query(query), Reading)

    def series(self, query: str, start: datetime, end: datetime, step_s: float) -> Series:
        """The query's values from ``start`` to ``end``, one per step, or none and why."""
        return self._ask(lambda: self.provider.query_range(query, start, end, step_s), Series)

    def series_by(
        self, query: str, label: str, start: datetime, end: datetime, step_s: float
    ) -> Series:
        """The query's series by ``label``'s value (``Series.labelled``), or none and why."""
        by = getattr(self.provider, "query_range_by", None)
        if by is None:
            return Series(None, f"a {self.source.kind} source cannot read a histogram's buckets")
        found: Series = self._ask(lambda: by(query, label, start, end, step_s), Series)
        return found

    def _ask(self, run: Callable[[], T], nothing: Callable[[None, str], T]) -> T:
        if self.down:
            return nothing(None, self.down)
        try:
            return self._retried(run)
        except MetricsUnavailable as error:
            self.down = f"{self.source.kind} unreachable: {error}"
            return nothing(None, self.down)
        except MetricsError as error:
            return nothing(None, str(error))

    def _retried(self, run: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return run()
            except MetricsTimeout:
                raise
            except MetricsUnavailable:
                if attempt >= ATTEMPTS:
                    raise
                self.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
                attempt += 1
