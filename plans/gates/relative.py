"""``kind: relative``: the canary against the stable, measured by the same query."""

from __future__ import annotations

from typing import Literal

from plans.gates.comparing import ComparingGate


class RelativeGate(ComparingGate):
    """The canary's value must stay within ``factor`` and ``margin`` of the stable's."""

    kind: Literal["relative"] = "relative"

    @classmethod
    def _fields_elsewhere(cls, names: list[str]) -> list[str]:
        problems = super()._fields_elsewhere(names)
        if "test" in names or "confidence" in names:
            problems.append("test and confidence apply to statistical and sequential gates")
        if "step" in names:
            problems.append("step applies to statistical and sequential gates")
        return problems

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.factor == 1.0 and self.margin == 0.0:
            problems.append(
                "factor 1 and margin 0 fail whenever the canary is a hair worse than the"
                " stable: allow some room, e.g. factor: 1.5 or margin: 0.001"
            )
        return problems

    def describe_threshold(self) -> str:
        return self.describe_limit()
