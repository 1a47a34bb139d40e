"""Metrics sources a plan can name: the ``MetricsSource`` union is the registry, keyed by ``kind``.

Adding a source: its model in a module here (a ``SourceModel`` with a ``kind`` literal and
its query language), one line in ``MetricsSource`` below, and its provider in
``activities/metrics``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from plans.presets import Preset
from plans.sources.base import QueryLanguage, SourceModel
from plans.sources.prometheus import PrometheusSource
from plans.sources.web import WebSource
from plans.text import kinds_of

MetricsSource = Annotated[
    PrometheusSource | WebSource,  # one name per kind
    Field(discriminator="kind"),
]

SOURCE_KINDS = kinds_of(MetricsSource)

# Every source's presets by name; a plan may use those of its own source.
PRESETS: dict[str, Preset] = {
    name: preset
    for model in SOURCE_KINDS.values()
    if issubclass(model, SourceModel)
    for name, preset in model.presets.items()
}

__all__ = [
    "PRESETS",
    "SOURCE_KINDS",
    "MetricsSource",
    "PrometheusSource",
    "QueryLanguage",
    "SourceModel",
    "WebSource",
]
