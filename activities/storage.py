"""Where the worker keeps files (reports, the record of sent notifications) and how it writes them.

A file is written whole or not at all: into a temporary file beside it, then renamed over
the old one, so a reader, a retried attempt or a second worker writing the same file at the
same moment sees one whole version, never a mix. Files get mode 0640 and the folders made
for them 0750 whatever the umask, and a folder is used only when this user owns it and
nobody else may write in it: in a folder others can write, anyone could swap a record or
plant a link where the worker is about to write. Renaming replaces a link planted at the
destination instead of writing through it, and temporary files are created exclusively
with O_NOFOLLOW.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from activities.errors import SideEffectError

FILE_MODE = 0o640
FOLDER_MODE = 0o750
STATE_FOLDER = "durable-rollouts"


class StoreRefused(SideEffectError):
    """A folder for the worker's files is unusable or unsafe: fix its owner or mode, or move it."""

    retryable = False


def state_home(setting: str) -> Path:
    """$XDG_STATE_HOME/durable-rollouts, else ~/.local/state/durable-rollouts: this user's."""
    configured = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative path here.
    if os.path.isabs(configured):
        return Path(configured) / STATE_FOLDER
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        home = None
    if home is None or not home.is_absolute() or not home.is_dir():
        raise StoreRefused(
            f"this user has no home folder ({home or 'none'}) to keep the worker's state in:"
            f" set {setting}, or XDG_STATE_HOME"
        )
    return home / ".local" / "state" / STATE_FOLDER


def owned_folder(path: Path, setting: str, *, within: Path | None = None) -> Path:
    """``path``, made if missing (0750); refused unless this user owns it and no other writes it."""
    # With ``within`` (a configured root), each folder from it down to ``path`` is checked too.
    top = within if within is not None else path
    _make(top, setting)
    _check(top, setting, follow=True)
    _check_above(top, setting)
    for folder in _below(top, path):
        _make(folder, setting)
        # Below the top, a link would lead the worker's files out of the folder it checked.
        _check(folder, setting, follow=False)
    return path


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it renamed over it (0640)."""
    # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW under a name nobody can guess.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            # Durable before it is visible: after a crash the name holds all of it or the old.
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def regular_file(path: Path) -> os.stat_result | None:
    """``path``'s own status when it is a regular file (a link there is not followed), else None."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    return status if stat.S_ISREG(status.st_mode) else None


def _below(top: Path, path: Path) -> list[Path]:
    """The folders from just below ``top`` down to ``path``."""
    if top == path:
        return []
    try:
        parts = path.relative_to(top).parts
    except ValueError:
        raise StoreRefused(f"{path} is not inside {top}") from None
    return [top.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def _make(folder: Path, setting: str) -> None:
    """Make ``folder`` and its missing parents with mode 0750, whatever the umask."""
    missing: list[Path] = []
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    for each in reversed(missing):
        try:
            os.mkdir(each, FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by another worker: checked like any folder
        except OSError as error:
            raise StoreRefused(
                f"cannot make {each}: {error.strerror}; make it yourself"
                f" (mode 750, owned by uid {os.geteuid()}) or point {setting} elsewhere"
            ) from None
        os.chmod(each, FOLDER_MODE)


def _check(folder: Path, setting: str, *, follow: bool) -> None:
    try:
        status = os.stat(folder) if follow else os.lstat(folder)
    except OSError as error:
        raise StoreRefused(
            f"cannot use {folder}: {error.strerror}; point {setting} elsewhere"
        ) from None
    if stat.S_ISLNK(status.st_mode):
        raise StoreRefused(
            f"{folder} is a link, and links inside the folder {setting} names are not"
            f" followed: put a folder there or point {setting} elsewhere"
        )
    if not stat.S_ISDIR(status.st_mode):
        raise StoreRefused(f"{folder} is not a folder: remove it or point {setting} elsewhere")
    uid = os.geteuid()
    if status.st_uid != uid:
        raise StoreRefused(
            f"{folder} belongs to uid {status.st_uid}, not to this process's user"
            f" (uid {uid}): chown it to uid {uid} or point {setting} at a folder of this user's"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(status.st_mode)
        if status.st_mode & stat.S_ISVTX:  # a shared folder such as /tmp: never to be closed
            raise StoreRefused(
                f"{folder} is a folder everyone may write in (mode {mode:o}): point {setting}"
                " at a folder of this user's inside it or elsewhere (it is made if missing)"
            )
        raise StoreRefused(
            f"{folder} may be written by others (mode {mode:o}): run"
            f" `chmod go-w {folder}` or point {setting} at a folder only this user may write"
        )


def _check_above(folder: Path, setting: str) -> None:
    """Refuse a folder whose parents someone else could rename it out of (or swap it in)."""
    # As sudo and ssh judge a path: each parent belongs to root or to this user, and one
    # that others may write in has the sticky bit (as /tmp), so no one else moves our entry.
    uid = os.geteuid()
    for parent in Path(os.path.realpath(folder)).parents:
        status = os.stat(parent)
        if status.st_uid not in (0, uid):
            raise StoreRefused(
                f"{parent}, a parent of {folder}, belongs to uid {status.st_uid}, who could move"
                f" the folder away: point {setting} at a folder whose parents belong to root"
                f" or uid {uid}"
            )
        open_to_others = status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if open_to_others and not status.st_mode & stat.S_ISVTX:
            raise StoreRefused(
                f"{parent}, a parent of {folder}, may be written by others (mode"
                f" {stat.S_IMODE(status.st_mode):o}), who could swap the folder: run"
                f" `chmod go-w {parent}` or point {setting} elsewhere"
            )
