"""Which requests a stage sends to the canary whatever its weight: a header or cookie match.

``match: {header: x-user-group, exact: internal}`` on a stage sends every request whose
``x-user-group`` header is ``internal`` to the canary (internal users first); the other
requests are split by the stage's weight. Only routers that can route by a request's
header declare ``supports_match``; the plan refuses a match on any other.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from plans import text
from plans.text import Strict

# A header or cookie name: an HTTP token, kept to the characters every router takes.
MATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# An exact or prefix value: no spaces, quotes, ';' or backslashes, which routers' command
# lines and cookie syntax give a meaning of their own.
MATCH_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+=,~*-]{1,200}$")
MAX_REGEX_CHARS = 200

Part = Literal["header", "cookie"]
How = Literal["exact", "prefix", "regex"]


def _name(v: str | None, what: str) -> str | None:
    if v is not None and not MATCH_NAME.fullmatch(v):
        raise ValueError(
            f"{text.quote(v)} is not a {what} name this can match: use 1-63 letters, digits,"
            " '_', '.' or '-', starting with a letter or digit"
        )
    return v


class RequestMatch(Strict):
    """Requests whose header (or cookie) has this value go to the canary.

    Exactly one of ``header`` / ``cookie`` and one of ``exact`` / ``prefix`` / ``regex``.
    ``regex`` must match the whole value.
    """

    header: str | None = Field(default=None, description="the request header to look at")
    cookie: str | None = Field(default=None, description="the cookie to look at")
    exact: str | None = Field(default=None, description="the value, exactly")
    prefix: str | None = Field(default=None, description="the value's beginning")
    regex: str | None = Field(default=None, description="a regular expression for the whole value")

    @field_validator("header")
    @classmethod
    def _header(cls, v: str | None) -> str | None:
        return _name(v, "header")

    @field_validator("cookie")
    @classmethod
    def _cookie(cls, v: str | None) -> str | None:
        return _name(v, "cookie")

    @field_validator("exact", "prefix")
    @classmethod
    def _value(cls, v: str | None) -> str | None:
        if v is not None and not MATCH_VALUE.fullmatch(v):
            raise ValueError(
                f"{text.quote(v)} cannot be matched: use 1-200 letters, digits or"
                " '_ . : / @ + = , ~ * -' (no spaces, quotes, ';' or backslashes),"
                " or write a regex"
            )
        return v

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v or len(v) > MAX_REGEX_CHARS:
            raise ValueError(f"regex: write 1 to {MAX_REGEX_CHARS} characters")
        if re.search(r"[\s;\"']", v):
            raise ValueError(
                f"regex {text.quote(v)} holds a space, a quote or ';': write \\x20, \\x22,"
                " \\x27 or \\x3b for them"
            )
        try:
            re.compile(v)
        except re.error as error:
            raise ValueError(f"regex {text.quote(v)} does not compile: {error}") from None
        return v

    @model_validator(mode="after")
    def _one_each(self) -> RequestMatch:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("match: name exactly one of header or cookie")
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise ValueError("match: give exactly one of exact, prefix or regex")
        return self

    @property
    def part(self) -> Part:
        return "header" if self.header is not None else "cookie"

    @property
    def name(self) -> str:
        return self.header if self.header is not None else str(self.cookie)

    @property
    def how(self) -> How:
        if self.exact is not None:
            return "exact"
        return "prefix" if self.prefix is not None else "regex"

    @property
    def value(self) -> str:
        return next(v for v in (self.exact, self.prefix, self.regex) if v is not None)

    def describe(self) -> str:
        """``header x-user-group exact 'internal'``, for people."""
        return f"{self.part} {self.name} {self.how} {self.value!r}"

    def encode(self) -> str:
        """One token without spaces (``header:x-user-group:exact:internal``); see ``decode``."""
        return f"{self.part}:{self.name}:{self.how}:{self.value}"

    @classmethod
    def decode(cls, token: str) -> RequestMatch | None:
        """The match ``encode`` wrote, or None when ``token`` is not one."""
        part, _, rest = token.partition(":")
        name, _, rest = rest.partition(":")
        how, _, value = rest.partition(":")
        if part not in ("header", "cookie") or how not in ("exact", "prefix", "regex"):
            return None
        try:
            return cls.model_validate({part: name, how: value})
        except ValueError:
            return None
