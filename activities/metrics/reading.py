"""What a metric provider answers: a number, or no number and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    """One query's value; ``value`` is None when there is no single number, and ``reason`` says why.

    NaN and infinities are passed through as values: the judge explains them.
    """

    value: float | None
    reason: str = ""
