"""HAProxy as a plan names it: its runtime API, its backend, its limits."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from plans import text
from plans.durations import Duration
from plans.routers.base import RouterModel

# A shift reads both weights, sets both and reads both back: one timeout per command,
# and one more for slack. A read is two commands and the same slack.
SHIFT_COMMANDS = 7
_WRITE_API = "write it as unix:///path/admin.sock or tcp://HOST:PORT"
_WRITE_MAP = "write the map file's absolute path as haproxy.cfg names it, without spaces"
_MAP_PATH = re.compile(r"^/[A-Za-z0-9_./@+=-]{1,999}$")
READ_COMMANDS = 3
# With a match map: a shift also reads the map, replaces it (prepare, add, commit) and reads
# it back; a read reads it once more.
SHIFT_MATCH_COMMANDS = 5
READ_MATCH_COMMANDS = 1


class HAProxyRouter(RouterModel):
    """HAProxy moved through its runtime API (admin-level stats socket)."""

    max_weight: ClassVar[int] = 256  # `set weight` takes 0-256
    supports_match: ClassVar[bool] = True  # through a runtime map (see match_map)

    kind: Literal["haproxy"] = "haproxy"
    runtime_api: Annotated[str, text.short_text("a runtime API address may have", _WRITE_API)] = (
        Field(description="unix:///path/to/admin.sock, a socket path, or tcp://127.0.0.1:9999")
    )
    backend: Annotated[str, text.safe_name("backend name")] = Field(
        description="the HAProxy backend holding the stable and canary servers"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per runtime command")
    match_map: Annotated[str, text.short_text("a map file's path may have", _WRITE_MAP)] | None = (
        Field(
            default=None,
            description="the map file whose entries send requests to the canary by header or"
            " cookie: the one haproxy.cfg's use-server rule reads",
        )
    )

    @field_validator("match_map")
    @classmethod
    def _match_map(cls, v: str | None) -> str | None:
        if v is not None and not _MAP_PATH.fullmatch(v):
            raise ValueError(f"{text.quote(v)}: {_WRITE_MAP}")
        return v

    def match_problems(self) -> list[str]:
        if self.match_map is None:
            return [
                "match_map: stages with match need the map file HAProxy routes them by:"
                f" add match_map: /etc/haproxy/{self.backend}-canary.map, and the use-server"
                " rule that reads it to the backend (see docs/routers.md, HAProxy)"
            ]
        return []

    @field_validator("runtime_api")
    @classmethod
    def _runtime_api(cls, v: str) -> str:
        if v.startswith("tcp://"):
            host, _, port = v[6:].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{text.quote(v)}: write the TCP runtime API as tcp://HOST:PORT")
        elif v in ("unix://", "unix:///") or (
            not v.startswith("unix://") and not v.startswith("/")
        ):
            raise ValueError(
                f"{text.quote(v)}: write the runtime API as unix:///path/admin.sock or"
                " tcp://HOST:PORT"
            )
        return v

    def describe(self) -> str:
        return f"haproxy {self.backend} via {self.runtime_api}"

    def target_key(self) -> str:
        """What a rollout owns here: the whole backend, since weights are relative within it.

        Two rollouts in one backend would each change the other's split, whichever
        servers they name.
        """
        address = self.runtime_api.removeprefix("unix://")
        return f"haproxy {address} backend {self.backend}"

    def placeholders(self) -> dict[str, str]:
        return {"backend": self.backend}

    @property
    def shift_timeout(self) -> timedelta:
        if self.match_map is not None:
            return self.timeout * (SHIFT_COMMANDS + SHIFT_MATCH_COMMANDS)
        return self.timeout * SHIFT_COMMANDS

    @property
    def read_timeout(self) -> timedelta:
        if self.match_map is not None:
            return self.timeout * (READ_COMMANDS + READ_MATCH_COMMANDS)
        return self.timeout * READ_COMMANDS
