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


@dataclass(frozen=True)
class Series:
    """A range query's values and their timestamps (``times``), one per step that has a value.

    ``values`` is None when there are none, and ``reason`` says why.

    NaN and infinities are passed through: the judge drops them and counts what is left.
    A query answering one series per label value (``query_range_by``) has them in
    ``labelled``, each aligned with ``times``.
    """

    values: tuple[float, ...] | None
    reason: str = ""
    times: tuple[float, ...] = ()
    labelled: dict[str, tuple[float, ...]] | None = None
