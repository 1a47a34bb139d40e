"""What every seam's registry does: find the implementation of a plan's ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from activities.errors import SideEffectError

Entry = TypeVar("Entry")


def of_kind(
    registry: Mapping[str, Entry], kind: str, what: str, refused: type[SideEffectError]
) -> Entry:
    """The entry for ``kind``, or the seam's ``refused`` error naming the kinds there are."""
    try:
        return registry[kind]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise refused(f"no {what} of kind {kind!r}: use one of {known}") from None
