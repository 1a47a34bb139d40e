"""Text in plans: the caps on sizes, safe names, placeholders, and how errors quote values.

Every plan model checks its names and sizes through this module, so one change to a cap or
to a name's alphabet reaches every seam alike. It also holds the models' strict base and
reads the kinds out of a registry union.
"""

from __future__ import annotations

import re
import reprlib
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict

from plans.addresses import url_refusal
from plans.variables import refused_everywhere

# Names end up inside queries (PromQL label matchers, URLs) and router commands (HAProxy's
# runtime API), so they may hold nothing that could close a string, open a selector or
# start a new command.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PLACEHOLDER = re.compile(r"\$(\w+)|\$\{(\w+)\}")

# How big a plan may be. The CLI validates a plan, and the worker validates it again each time
# a run starts or continues as new; it also travels in the run's history. Real plans hold a
# few gates and a handful of stages in a few kilobytes, so these leave ample room while
# keeping one plan from tying up either.
MAX_STAGES = 100
MAX_GATES = 50  # in the plan, and named by one stage
MAX_QUERY_CHARS = 4_000
MAX_PLACEHOLDERS = 50  # in one query
MAX_TEXT_CHARS = 1_000  # a URL or a runtime API address
# What an error message shows: values are quoted by their start, and a bad plan's problems
# are listed up to a point, so a huge value cannot make a huge message.
QUOTE_CHARS = 60
MAX_PROBLEM_CHARS = 1_000
MAX_PROBLEMS_SHOWN = 50

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = QUOTE_CHARS
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5


class Strict(BaseModel):
    """Base of the plan's models: unknown fields are errors, and a validated plan never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def kinds_of(union: Any) -> dict[str, type[BaseModel]]:
    """A registry union's models by their ``kind`` (``Router``, ``MetricsSource``, ``Gate``)."""
    inner = get_args(union)[0]  # Annotated[X | Y, discriminator] -> X | Y
    members = get_args(inner) or (inner,)
    models = [get_args(m)[0] if get_args(m) else m for m in members]  # Annotated[X, Tag]
    return {m.model_fields["kind"].default: m for m in models}


def quote(value: object) -> str:
    """A value as an error message shows it: its repr, or its start and its length if long."""
    if isinstance(value, str):
        if len(value) <= QUOTE_CHARS + 20:
            return repr(value)
        return f"{value[:QUOTE_CHARS]!r}\u2026 ({len(value):,} characters)"
    try:
        return _REPR.repr(value)
    except Exception:  # a value whose repr fails still gets a message
        return f"a {type(value).__name__}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}\u2026 ({len(text):,} characters)"


def some(items: list[str], shown: int = 5) -> str:
    """The first few of a list, comma-separated, and how many more there are."""
    listed = ", ".join(items[:shown])
    return f"{listed} and {len(items) - shown:,} more" if len(items) > shown else listed


def too_long(value: str, limit: int, what: str) -> str | None:
    """A message for a string past its limit, or None when it fits."""
    if len(value) <= limit:
        return None
    return f"{quote(value)} is longer than the {limit:,} characters {what}"


def at_most(value: Any, limit: int, items: str, holder: str, fix: str) -> Any:
    """Refuse a list longer than ``limit`` before any of its items is validated."""
    if isinstance(value, list | tuple) and len(value) > limit:
        raise ValueError(f"{len(value):,} {items}, more than the {limit:,} {holder}: {fix}")
    return value


def check_name(value: str, what: str) -> str:
    """``value`` if it is a safe name (see SAFE_NAME), else a ValueError saying how to write one."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not a safe {what}: use 1-63 letters, digits, '_', '.', ':' or"
            " '-', starting with a letter or digit (it is put into queries and router commands)"
        )
    return value


def check_env(value: str | None) -> str | None:
    """``value`` if it can name an environment variable a plan may read (or is None)."""
    if value is not None and not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{quote(value)} is not an environment variable name: use letters, digits and '_'"
        )
    never = refused_everywhere(value) if value is not None else None
    if never is not None:
        raise ValueError(never)
    return value


def safe_name(what: str) -> AfterValidator:
    """A field's check that it holds a safe name (``Annotated[str, safe_name("stage name")]``)."""
    return AfterValidator(lambda v: check_name(v, what))


def short_text(what: str, fix: str) -> AfterValidator:
    """Check that a field's text is at most MAX_TEXT_CHARS long; ``fix`` says how to write it."""

    def check(v: str) -> str:
        found = too_long(v, MAX_TEXT_CHARS, what)
        if found:
            raise ValueError(f"{found}: {fix}")
        return v

    return AfterValidator(check)


EnvName = Annotated[str, AfterValidator(lambda v: check_env(v))]
"""The name of an environment variable the worker reads a secret from."""


def placeholders_in(text: str) -> set[str]:
    """The placeholder names a query uses (``$canary`` and ``${canary}`` alike)."""
    return {a or b for a, b in PLACEHOLDER.findall(text)}


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each placeholder replaced by its value; a missing value raises KeyError."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return PLACEHOLDER.sub(value, text)


def check_url(value: str, pattern: re.Pattern[str], fix: str) -> str:
    """``value`` if ``pattern`` matches it whole, with a valid port (group 2) and host, else why."""
    match = pattern.fullmatch(value)
    port = match.group(2) if match is not None else None
    if match is None or (port is not None and not 0 < int(port) < 65536):
        raise ValueError(f"{quote(value)}: {fix}")
    refused = url_refusal(value)
    if refused is not None:
        raise ValueError(f"{quote(value)}: {refused}")
    return value
