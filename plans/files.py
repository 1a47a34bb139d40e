"""Reading the small text files people write (plans, alert rules): bounded, UTF-8, said plainly."""

from __future__ import annotations

from pathlib import Path


class UnreadableFile(Exception):
    """Why a file could not be read, as a sentence that names the file."""


def read_small_text(path: Path, limit: int, too_big: str) -> str:
    """The file's text; ``too_big`` is the sentence for a file over ``limit`` bytes.

    At most ``limit + 1`` bytes are read, so a huge or endless file costs no more than that.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(limit + 1)
    except OSError as error:
        raise UnreadableFile(f"cannot read {path}: {error.strerror}") from None
    if len(raw) > limit:
        raise UnreadableFile(too_big)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableFile(
            f"cannot read {path} as UTF-8 text (byte {error.start}): save it as UTF-8"
        ) from None
