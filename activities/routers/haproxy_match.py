"""A stage's ``match`` as an entry of an HAProxy map, so it changes without a reload.

haproxy.cfg holds one rule in the backend, written once::

    use-server canary if { req.hdrs,map_reg(/etc/haproxy/app-canary.map) -m found }

``req.hdrs`` is the request's whole header block (``name: value`` lines), so one map of
regular expressions covers a header or a cookie, matched exactly, by prefix or by a regex,
and the header's name can change at run time too. The entry's key is the expression and
its value the match in words (``RequestMatch.encode``), which is how it is read back.
"""

from __future__ import annotations

import re

from plans import RequestMatch

_BLANKS = r"[\t\x20]*"  # HAProxy's command line splits on spaces: none in a key
_LINE_END = _BLANKS + r"\r?$"
_COOKIE_END = r"(?:\x3b|" + _LINE_END + ")"  # the next cookie's ';', or the line's end


def _literal(value: str) -> str:
    return re.escape(value)


def map_key(match: RequestMatch) -> str:
    """The regular expression (PCRE) matching requests' header blocks for ``match``."""
    if match.part == "header":
        start = rf"(?m)^(?i:{_literal(match.name)}):{_BLANKS}"
        end = _LINE_END
    else:
        # Any cookie of the Cookie header: at its start or after a ';' or a space.
        start = rf"(?m)^(?i:cookie):(?:[^\r\n]*[\x3b\t\x20])?{_literal(match.name)}="
        end = _COOKIE_END
    if match.how == "exact":
        return start + _literal(match.value) + end
    if match.how == "prefix":
        return start + _literal(match.value)
    return start + f"(?:{match.value})" + end


def cli_argument(word: str) -> str:
    """A word for HAProxy's command line, which takes backslashes and ';' as its own."""
    return word.replace("\\", "\\\\").replace(";", "\\;")


def entries(answer: str) -> list[tuple[str, str, str]]:
    """``show map``'s lines as (reference, key, value)."""
    found = []
    for line in answer.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("0x"):
            found.append((parts[0], parts[1], parts[2]))
    return found


def match_of(found: list[tuple[str, str, str]]) -> RequestMatch | str | None:
    """The match these entries route, None for none, or a sentence for entries not ours."""
    if not found:
        return None
    if len(found) == 1:
        _, key, value = found[0]
        match = RequestMatch.decode(value)
        if match is not None and map_key(match) == key:
            return match
    shown = "; ".join(f"{key} {value}" for _, key, value in found[:3])
    return f"{len(found)} entr{'y' if len(found) == 1 else 'ies'} no rollout wrote ({shown})"
