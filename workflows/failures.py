"""What went wrong under an activity error, as the workflows read it."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

# A restore found the canary server gone from the router: stable has all the traffic.
CANARY_GONE = "CanaryGone"


def root_message(error: BaseException) -> str:
    """The innermost cause's message: what actually went wrong under the activity wrapper."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def error_type(error: BaseException) -> str:
    """The application error type under an activity error ('' when there is none)."""
    while error.__cause__ is not None:
        error = error.__cause__
        if isinstance(error, ApplicationError):
            return error.type or ""
    return ""
