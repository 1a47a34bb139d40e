"""Errors the side effects raise; ``retryable`` says whether trying again can help.

Each seam has a "refused" error (the configuration is wrong: no retry cures it)
and an "unreachable" error (the other side is down or slow: a retry may).
"""

from __future__ import annotations

from typing import ClassVar

from plans import RolloutError


class SideEffectError(RolloutError):
    """Base of the errors raised by routers, metric providers and notifiers."""

    retryable: ClassVar[bool] = True
    reported_as: ClassVar[str] = ""  # the error type activities report, if not the class's name


class RouterError(SideEffectError):
    """The traffic router did not end up routing as asked."""


class RouterRefused(RouterError):
    """The router answered but refused the command: fix the plan or the router's config."""

    retryable = False


class ServerMissing(RouterRefused):
    """The router has no server by the name the plan gives (reported as RouterRefused)."""

    reported_as: ClassVar[str] = "RouterRefused"

    def __init__(self, message: str, server: str) -> None:
        super().__init__(message)
        self.server = server


class CanaryGone(RouterRefused):
    """A restore found the canary server gone from the router: nothing can route to it.

    Stable was given its whole weight, so the restore holds; the workflow counts it as done.
    """


class RouterUnreachable(RouterError):
    """The router's control API could not be reached or did not answer in time."""


class MetricsError(SideEffectError):
    """A metric could not be read."""


class MetricsRefused(MetricsError):
    """The metrics source rejected the query or the credentials: fix the plan or the token."""

    retryable = False


class MetricsUnavailable(MetricsError):
    """The metrics source could not be reached or failed on its side."""


class MetricsTimeout(MetricsUnavailable):
    """The metrics source took longer than the plan's timeout to answer."""


class NotifierError(SideEffectError):
    """A notification could not be delivered."""


class NotifierRefused(NotifierError):
    """The notification cannot be sent as configured: fix the variable or the URL it holds."""

    retryable = False


class NotifierUnreachable(NotifierError):
    """The receiving end could not be reached or failed on its side."""
