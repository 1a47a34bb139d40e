"""Prometheus as a plan names it: where it is, how to authenticate, how long to wait."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from plans import text
from plans.durations import Duration
from plans.presets import Preset
from plans.sources.base import QueryLanguage, SourceModel
from plans.sources.prometheus_presets import PROMETHEUS_PRESETS
from plans.sources.promql import PromQL

_URL = re.compile(r"https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?(/\S*)?")


class PrometheusSource(SourceModel):
    """A Prometheus server the gates query in PromQL."""

    language: ClassVar[QueryLanguage] = PromQL()
    presets: ClassVar[Mapping[str, Preset]] = PROMETHEUS_PRESETS

    kind: Literal["prometheus"] = "prometheus"
    url: Annotated[
        str, text.short_text("a Prometheus URL may have", "write it as http(s)://host:port")
    ]
    bearer_token_env: text.EnvName | None = Field(
        default=None, description="environment variable holding a bearer token, read by the worker"
    )
    timeout: Duration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return text.check_url(v, _URL, "write the Prometheus URL as http(s)://host:port").rstrip(
            "/"
        )

    def secret_variables(self) -> tuple[str, ...]:
        return (self.bearer_token_env,) if self.bearer_token_env else ()
