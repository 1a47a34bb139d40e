"""Built-in gates a plan names instead of writing a query: ``preset: haproxy-error-rate``.

Each preset is one metric written once with ``$target``, so it serves every gate kind:
``threshold`` judges the canary alone, ``relative`` and ``statistical`` fill ``$target``
with the canary and then with the stable. A preset fills only the fields a gate leaves
out, so any of them can be overridden. Each metrics source owns the presets written in its
query language (``plans.sources``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A metric and the defaults each gate kind uses with it."""

    name: str
    source: str
    description: str
    query: str
    samples_query: str
    unit: str
    direction: str
    test: str
    threshold: dict[str, float]
    relative: dict[str, float]
    statistical: dict[str, float]
    common: dict[str, Any] = field(default_factory=dict)
    sequential: dict[str, Any] = field(default_factory=dict)

    def defaults(self, kind: str) -> dict[str, Any]:
        """The fields this preset gives a gate of ``kind``."""
        fields: dict[str, Any] = {
            "query": self.query,
            "samples_query": self.samples_query,
            "unit": self.unit,
            "min_samples": 100,
            "failure_limit": 2,
            **self.common,
        }
        if kind == "threshold":
            fields.update(self.threshold)
        elif kind == "sequential":
            # Valid at every look: one fail is already confident, so it acts at once.
            fields |= {"direction": self.direction, "failure_limit": 1, **self.sequential}
        else:
            fields["direction"] = self.direction
            fields.update(self.relative if kind == "relative" else self.statistical)
            if kind == "statistical":
                fields["test"] = self.test
                fields["window"] = "2m"
        return fields
