"""The rollout's Temporal activities, registered under the names in ``plans.runtime.messages``.

Errors a user can fix come back as non-retryable ``ApplicationError``s whose ``type``
is the project exception's class name (``RouterRefused``, ``NotifierRefused``...);
outages come back retryable (``RouterUnreachable``, ``NotifierUnreachable``...).
``shift_traffic``, ``read_traffic`` and ``check_gates`` are plain functions: run the
worker with an ``activity_executor`` thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import gates as gate_checks
from activities.errors import RouterRefused, SideEffectError
from activities.hooks import HOOK_ACTIVITIES
from activities.metrics import MetricProvider, provider_for
from activities.notifiers.delivery import deliver
from activities.notifiers.messages import RunLink
from activities.notifiers.sent import SentRecord
from activities.plan_secrets import plan_secret
from activities.routers import router_for
from plans import (
    GateCheck,
    MetricsSource,
    Notification,
    ShiftRequest,
    TrafficSplit,
    Verdict,
)
from plans.runtime import messages
from plans.runtime.checks import CheckRequest, Observation
from plans.runtime.metric_names import SHIFT_SECONDS, SHIFTS

# A split that cannot be read is asked for once more after this, as the read activity's
# retry policy does.
READ_AGAIN_S = 1.0


@contextmanager
def _reported() -> Iterator[None]:
    """Turn the project's errors into ApplicationErrors that say whether to retry."""
    try:
        yield
    except SideEffectError as error:
        raise ApplicationError(
            str(error),
            type=error.reported_as or type(error).__name__,
            non_retryable=not error.retryable,
        ) from None


@activity.defn(name=messages.SHIFT_TRAFFIC)
def shift_traffic(req: ShiftRequest) -> TrafficSplit:
    """Set the stable/canary weights on the router and return what it routes now."""
    activity.logger.info("shifting %s to %s on %s", req.canary, req.split, req.router.describe())
    began, outcome = time.monotonic(), "failed"
    try:
        with _reported():
            _within_limits(req)
            now = router_for(req.router).set_split(req.stable, req.canary, req.split)
        outcome = "done"
    finally:
        _meter_shift(req, outcome, time.monotonic() - began)
    activity.logger.info("router now has %s", now)
    return now


def _meter_shift(req: ShiftRequest, outcome: str, seconds: float) -> None:
    """Count a shift by router kind and outcome, and how long the router took."""
    meter = activity.metric_meter()
    labels = {"router": req.router.kind, "outcome": outcome}
    meter.create_counter(SHIFTS, "Traffic shifts asked of the router").add(1, labels)
    meter.create_histogram_float(SHIFT_SECONDS, "How long a shift took", "s").record(
        seconds, labels
    )


def _within_limits(req: ShiftRequest) -> None:
    """Refuse weights past what the router takes, before any of them is set."""
    limit = req.router.max_weight
    weights = (req.split.stable_weight, req.split.canary_weight)
    if max(weights) > limit:
        raise RouterRefused(
            f"{req.router.describe()} takes weights from 0 to {limit}, not {req.split}"
        )
    if req.split.match is not None and (
        not req.router.supports_match or req.router.match_problems()
    ):
        why = "; ".join(req.router.match_problems()) or "remove match"
        raise RouterRefused(
            f"{req.router.describe()} cannot send requests to the canary by"
            f" {req.split.match.describe()}: {why}"
        )


@activity.defn(name=messages.READ_TRAFFIC)
def read_traffic(req: ShiftRequest) -> TrafficSplit:
    """The router's current stable/canary weights (``req.split`` is ignored)."""
    with _reported():
        return router_for(req.router).get_split(req.stable, req.canary)


_providers = threading.local()


def _provider(source: MetricsSource) -> MetricProvider:
    """A provider kept per worker thread and source, so checks reuse their HTTP connections.

    Opening a session for every check was the worker's largest cost at a thousand
    rollouts. The key holds the current values of the variables the source reads its
    secrets from, so a rotated token takes effect.
    """
    secrets = tuple(
        plan_secret(name, "the metrics source") or "" for name in source.secret_variables()
    )
    key = (source.model_dump_json(), secrets)
    cache: dict[tuple[str, tuple[str, ...]], MetricProvider]
    cache = _providers.__dict__.setdefault("cache", {})
    provider = cache.get(key)
    if provider is None:
        provider = cache[key] = provider_for(source)
    return provider


@activity.defn(name=messages.CHECK_GATES)
def check_gates(req: GateCheck) -> list[Verdict]:
    """One verdict per gate; an unreachable source or a bad query makes gates inconclusive.

    This activity fails only on a bug: outages and refusals are verdicts, so the
    workflow's policy sees them (see ``activities.gates`` for the retry policy).
    """
    # Gates are checked source by source, so one source found down answers for its own
    # gates only; the verdicts keep the plan's order.
    by_source: dict[str | None, list[int]] = {}
    for index, gate in enumerate(req.gates):
        by_source.setdefault(gate.source, []).append(index)
    found: dict[int, Verdict] = {}
    for indexes in by_source.values():
        gates = [req.gates[i] for i in indexes]
        source = req.source_for(gates[0])
        try:
            provider = _provider(source)
        except SideEffectError as error:
            checked = gate_checks.inconclusive(gates, source, req.placeholders, str(error))
        else:
            checked = gate_checks.evaluate(
                gates,
                provider,
                req.placeholders,
                source=source,
                progress=_heartbeat(),
                started_at=req.stage_started_at,
                span=req.stage_span,
            )
        found |= dict(zip(indexes, checked, strict=True))
    verdicts = [found[i] for i in range(len(req.gates))]
    for verdict in verdicts:
        activity.logger.info("gate %s", verdict.explain())
    return verdicts


def _heartbeat() -> Callable[[], None]:
    """Heartbeats for a check run as a regular activity; a local one has nothing to send them to."""
    if activity.info().is_local:
        return lambda: None
    return activity.heartbeat


@activity.defn(name=messages.LOOK)
def look(req: CheckRequest) -> Observation:
    """A check in one activity: the router's split (or why not), then the gates' verdicts.

    One local activity a check instead of two halves what the worker converts and
    dispatches for it. Neither half fails the other: an unreadable router is data here.
    """
    split, unreadable = None, ""
    for attempt in range(2):
        try:
            split = router_for(req.read.router).get_split(req.read.stable, req.read.canary)
            unreadable = ""
            break
        except SideEffectError as error:
            unreadable = str(error)
            if not error.retryable or attempt:
                break
            time.sleep(READ_AGAIN_S)
    verdicts = check_gates(req.check) if req.check is not None else []
    return Observation(split=split, unreadable=unreadable, verdicts=verdicts)


def look_timeout(req: CheckRequest) -> timedelta:
    """Two reads of the router, the pause between them, and the whole gate check."""
    check = check_gates_timeout(req.check) if req.check is not None else timedelta()
    return 2 * req.read.router.read_timeout + timedelta(seconds=READ_AGAIN_S) + check


def check_gates_timeout(req: GateCheck) -> timedelta:
    """A start-to-close timeout that covers ``check_gates`` even when every query is slow."""
    return gate_checks.time_budget(req) + timedelta(seconds=5)


_sent = SentRecord()


@activity.defn(name=messages.NOTIFY)
async def notify(message: Notification) -> None:
    """Render the message and deliver it to its channels, once per event and channel.

    The record of what was sent ($ROLLOUT_NOTIFY_DIR) makes a retried attempt send only
    what did not go out yet (see ``activities.notifiers.sent``).
    """
    info = activity.info()
    link = RunLink(
        info.workflow_namespace or "default", info.workflow_id or "", info.workflow_run_id or ""
    )
    with _reported():
        await deliver(message, link, _sent)


ALL_ACTIVITIES: list[Callable[..., Any]] = [
    shift_traffic,
    read_traffic,
    check_gates,
    look,
    notify,
    *HOOK_ACTIVITIES,
]
