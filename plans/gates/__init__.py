"""Gates: one model per kind, and the ``Gate`` union that is their registry.

``kind`` may be left out of a plan: a gate without one is a threshold gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import Discriminator, Tag, TypeAdapter

from plans.gates.base import SEVERITY_ACTIONS, GateBase, format_value
from plans.gates.comparing import ComparingGate
from plans.gates.relative import RelativeGate
from plans.gates.sequential import SequentialGate
from plans.gates.statistical import StatisticalGate
from plans.gates.threshold import ThresholdGate
from plans.text import kinds_of


def _kind_of(value: Any) -> str:
    kind = value.get("kind", "threshold") if isinstance(value, dict) else getattr(value, "kind", "")
    # An unknown kind goes to the threshold model, whose kind field then names the kinds.
    return kind if isinstance(kind, str) and kind in _TAGS else "threshold"


Gate = Annotated[
    Annotated[ThresholdGate, Tag("threshold")]
    | Annotated[RelativeGate, Tag("relative")]
    | Annotated[StatisticalGate, Tag("statistical")]
    | Annotated[SequentialGate, Tag("sequential")],
    Discriminator(_kind_of),
]

GATE_MODELS: Mapping[str, type[GateBase]] = {
    kind: model for kind, model in kinds_of(Gate).items() if issubclass(model, GateBase)
}
_TAGS = frozenset(GATE_MODELS)


@cache
def _adapter() -> TypeAdapter[Gate]:
    return TypeAdapter(Gate)


def gate_from(data: Mapping[str, Any] | None = None, /, **fields: Any) -> Gate:
    """A gate of the kind its fields name, from a mapping and/or keywords (as a plan writes it)."""
    return _adapter().validate_python({**(data or {}), **fields})


__all__ = [
    "GATE_MODELS",
    "SEVERITY_ACTIONS",
    "ComparingGate",
    "Gate",
    "GateBase",
    "RelativeGate",
    "SequentialGate",
    "StatisticalGate",
    "ThresholdGate",
    "format_value",
    "gate_from",
]
