"""Envoy as a plan names it: its admin address, the runtime keys a rollout owns, its limits."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from plans import text
from plans.durations import Duration
from plans.routers.base import RouterModel

# A shift reads the runtime, sets both keys in one request and reads back (three requests),
# and may look up the route's default weights once: one timeout each, and one for slack.
SHIFT_REQUESTS = 5
# A read is the runtime and perhaps the route's defaults, and slack.
READ_REQUESTS = 3
# Runtime keys are dot-separated words; Envoy appends "." and the cluster's name.
RUNTIME_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_PREFIX_CHARS = 200
_WRITE_ADMIN = "write it as http://127.0.0.1:PORT"


class EnvoyRouter(RouterModel):
    """Envoy moved through its admin API: weighted clusters read their weights from runtime keys.

    The route's ``weighted_clusters`` names ``runtime_key_prefix``; Envoy then takes each
    cluster's weight from the runtime key ``<prefix>.<cluster>`` when it is set, and from
    the static config when not. A shift sets both keys in the admin runtime layer.
    """

    # Runtime weights are unsigned integers; a rollout uses percents, so this is ample.
    max_weight: ClassVar[int] = 10_000

    kind: Literal["envoy"] = "envoy"
    admin: Annotated[str, text.short_text("an admin address may have", _WRITE_ADMIN)] = Field(
        description="Envoy's admin API on this machine: http://127.0.0.1:9901"
    )
    runtime_key_prefix: str = Field(
        description="the route's weighted_clusters.runtime_key_prefix, e.g. routing.checkout"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per admin request")

    @field_validator("admin")
    @classmethod
    def _admin(cls, v: str) -> str:
        try:
            url = urlsplit(v)
            port = url.port
        except ValueError:
            raise ValueError(
                f"{text.quote(v)} is not a URL with a port from 1 to 65535: {_WRITE_ADMIN}"
            ) from None
        if url.scheme != "http":
            raise ValueError(
                f"{text.quote(v)}: Envoy's admin API speaks plain HTTP: {_WRITE_ADMIN}"
            )
        if url.username is not None or url.query or url.fragment or url.path not in ("", "/"):
            raise ValueError(
                f"{text.quote(v)}: give only the scheme, host and port of the admin API,"
                f" no path, query or user ({_WRITE_ADMIN})"
            )
        if not port:
            raise ValueError(f"{text.quote(v)}: name the admin port ({_WRITE_ADMIN})")
        if not _loopback(url.hostname or ""):
            raise ValueError(
                f"{text.quote(v)}: the admin API must be on this machine (127.0.0.1, [::1] or"
                " localhost). It has no authentication and can change all of Envoy's routing,"
                " so bind it to loopback and run the worker beside Envoy"
            )
        return v.rstrip("/")

    @field_validator("runtime_key_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if len(v) > MAX_PREFIX_CHARS or not RUNTIME_PREFIX.fullmatch(v):
            raise ValueError(
                f"{text.quote(v)} is not a runtime key prefix: use words of letters, digits,"
                " '_' or '-' joined by single dots, like routing.checkout (at most"
                f" {MAX_PREFIX_CHARS} characters), as in the route's runtime_key_prefix"
            )
        return v

    def describe(self) -> str:
        return f"envoy {self.runtime_key_prefix} via {self.admin}"

    def target_key(self) -> str:
        """What a rollout owns here: the runtime keys under its prefix on one Envoy."""
        return f"envoy {self.admin} runtime {self.runtime_key_prefix}"

    def placeholders(self) -> dict[str, str]:
        return {}

    def runtime_key(self, cluster: str) -> str:
        """The key Envoy reads a cluster's weight from (``<prefix>.<cluster>``)."""
        return f"{self.runtime_key_prefix}.{cluster}"

    @property
    def shift_timeout(self) -> timedelta:
        return self.timeout * SHIFT_REQUESTS

    @property
    def read_timeout(self) -> timedelta:
        return self.timeout * READ_REQUESTS


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
