"""A feature flag in a flagd flag-definition file, as a plan names it.

The rollout owns one flag's ``targeting``: a ``fractional`` split between two of the flag's
variants, which the plan's ``stable`` and ``canary`` name. The application evaluates the
flag with OpenFeature (flagd's provider reading the same file, or flagd serving it), using
its user id as the targeting key, so each user keeps a variant as the share grows.
"""

from __future__ import annotations

import posixpath
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from plans import text
from plans.durations import Duration
from plans.match import RequestMatch
from plans.routers.base import RouterModel

_WRITE_FILE = "write the absolute path of the flag file, like /etc/flagd/flags.json"
# A shift reads the file, writes a new one beside it and reads it back; the lock on its
# folder may wait for another rollout's write to the same file.
SHIFT_STEPS = 4
READ_STEPS = 2


class FlagdRouter(RouterModel):
    """One flag of a flagd flag-definition file (JSON), rewritten whole on each shift."""

    max_weight: ClassVar[int] = 100  # weights are shares of 100; 1% is the finest step
    # A rule ahead of the fractional split: {"if": [RULE, canary, {"fractional": ...}]}.
    supports_match: ClassVar[bool] = True

    kind: Literal["flagd"] = "flagd"
    file: Annotated[str, text.short_text("a flag file path may have", _WRITE_FILE)] = Field(
        description="absolute path of the flag file (JSON, flagd's schema) the worker rewrites"
    )
    flag: Annotated[str, text.safe_name("flag key")] = Field(
        description="the flag's key in the file; its variants are the plan's stable and canary"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per file operation")

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(
                f"{text.quote(v)} is not an absolute path: the worker may run in another"
                f" folder than you; {_WRITE_FILE}"
            )
        if v.endswith("/") or posixpath.basename(v) in ("", ".", ".."):
            raise ValueError(f"{text.quote(v)} names a folder, not a file: {_WRITE_FILE}")
        if not v.endswith(".json"):
            raise ValueError(
                f"{text.quote(v)} does not end in .json: the router rewrites flagd's JSON"
                " flag files (convert a YAML one with any YAML-to-JSON tool)"
            )
        if "\x00" in v or "\n" in v:
            raise ValueError(f"{text.quote(v)} holds a control character: {_WRITE_FILE}")
        return posixpath.normpath(v)

    def describe(self) -> str:
        return f"flagd flag {self.flag} in {self.file}"

    def match_refusal(self, match: RequestMatch) -> str:
        if match.regex is not None:
            return (
                "flagd's targeting has no regular expressions: match with exact or prefix"
                " (flagd's starts_with)"
            )
        name = match.header or match.cookie or ""
        if "." in name:
            return (
                f"{name!r}: flagd reads the evaluation context by dotted paths, so the name"
                " cannot hold a '.'"
            )
        return ""

    def target_key(self) -> str:
        """What a rollout owns here: one flag of one file (other flags there are others')."""
        return f"flagd {self.file} flag {self.flag}"

    def placeholders(self) -> dict[str, str]:
        return {"flag": self.flag}

    @property
    def shift_timeout(self) -> timedelta:
        return self.timeout * SHIFT_STEPS

    @property
    def read_timeout(self) -> timedelta:
        return self.timeout * READ_STEPS
