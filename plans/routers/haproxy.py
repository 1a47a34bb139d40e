"""HAProxy as a plan names it: its runtime API, its backend, its limits."""

from __future__ import annotations

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
READ_COMMANDS = 3


class HAProxyRouter(RouterModel):
    """HAProxy moved through its runtime API (admin-level stats socket)."""

    max_weight: ClassVar[int] = 256  # `set weight` takes 0-256

    kind: Literal["haproxy"] = "haproxy"
    runtime_api: Annotated[str, text.short_text("a runtime API address may have", _WRITE_API)] = (
        Field(description="unix:///path/to/admin.sock, a socket path, or tcp://127.0.0.1:9999")
    )
    backend: Annotated[str, text.safe_name("backend name")] = Field(
        description="the HAProxy backend holding the stable and canary servers"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per runtime command")

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
        return self.timeout * SHIFT_COMMANDS

    @property
    def read_timeout(self) -> timedelta:
        return self.timeout * READ_COMMANDS
