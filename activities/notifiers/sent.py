"""Which messages were delivered: a folder of small files, one per key, so none goes twice.

Temporal retries an activity whose worker died or whose result got lost, and it cannot know
whether the message left before that happened. Each delivery therefore first claims its key
(an exclusive create, atomic on local and network file systems alike), sends, then writes
the key's ``.sent`` file (whole, through a rename) and gives the claim up. A retry finds
``.sent`` and sends nothing; it finds a fresh claim while another attempt still sends and
backs off; a claim older than ``STALE_CLAIM`` belongs to an attempt that died before it
could say, and is taken over. A failed send gives its claim back, so the retry tries again.
Workers that share the folder (a volume) share the record; the one moment a message can
still go twice is a worker dying between the receiver's "OK" and the ``.sent`` file, which
no sender can close without the receiver's help.

The folder is one the worker owns and no one else may write in (``activities.storage``):
``$ROLLOUT_NOTIFY_DIR``, else ``notices`` in the worker's state folder. Nothing here follows
a link: a record is what ``lstat`` finds there, files are made exclusively with O_NOFOLLOW or
renamed into place. A stale claim is taken over under a lock (``flock``, held for a rename)
and claimed afresh by exclusive create, so of two attempts taking it over one wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from activities.errors import NotifierUnreachable
from activities.storage import FILE_MODE, owned_folder, regular_file, state_home, write_whole

NOTIFY_DIR_ENV = "ROLLOUT_NOTIFY_DIR"
STALE_CLAIM = 120.0  # seconds: well past the notify activity's start-to-close timeout (30 s)
KEEP_SENT = 30 * 86_400.0  # seconds a delivered key is remembered
PRUNE_EVERY = 3_600.0
TAKE_OVER_LOCK = ".take-over.lock"
_CLAIM_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def default_folder() -> Path:
    """$ROLLOUT_NOTIFY_DIR, else ``notices`` in the worker's state folder."""
    configured = os.environ.get(NOTIFY_DIR_ENV)
    if configured:
        return Path(configured)
    return state_home(NOTIFY_DIR_ENV) / "notices"


class SentRecord:
    """Delivered keys, kept as files in ``folder`` (by default ``default_folder()``)."""

    def __init__(self, folder: Path | None = None) -> None:
        # Resolved at first use, not at import: the worker's environment is set by then.
        self._folder = folder
        self._pruned_at = 0.0

    @property
    def folder(self) -> Path:
        """The folder of the record."""
        if self._folder is None:
            self._folder = default_folder()
        return self._folder

    def ready(self) -> Path:
        """The folder, made if missing; refused when it is not the worker's alone."""
        return owned_folder(self.folder, NOTIFY_DIR_ENV)

    def _path(self, key: str, suffix: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.folder / f"{digest}{suffix}"

    def delivered(self, key: str) -> bool:
        """Whether a message under ``key`` went out already."""
        # A link planted at the name is no record of ours: it is not followed, nor believed.
        return regular_file(self._path(key, ".sent")) is not None

    async def once(self, key: str, send: Callable[[], Awaitable[None]]) -> bool:
        """Run ``send`` unless ``key`` was delivered; True when it ran and succeeded."""
        self.ready()
        self._prune()
        sent, claim = self._path(key, ".sent"), self._path(key, ".claim")
        if self.delivered(key):
            return False
        mine = self._claim(claim, key)
        # Looked at again now that the claim is ours: an attempt that finished between the
        # first look and the claim wrote ``.sent`` before it gave its claim up.
        if self.delivered(key):
            self._give_up(claim, mine)
            return False
        try:
            await send()
        except BaseException:
            self._give_up(claim, mine)
            raise
        write_whole(sent, key.encode())
        self._give_up(claim, mine)
        return True

    def _claim(self, claim: Path, key: str) -> os.stat_result:
        """Claim ``key`` (taking a stale claim over); the claim's status, to know it by."""
        for _ in range(2):
            try:
                fd = os.open(claim, _CLAIM_FLAGS, FILE_MODE)
            except FileExistsError:
                if self._take_over(claim):
                    continue  # the stale claim is gone: claim afresh, exclusively
                break
            with os.fdopen(fd, "w") as file:
                os.fchmod(file.fileno(), FILE_MODE)
                file.write(key)
                return os.fstat(file.fileno())
        raise NotifierUnreachable(f"another attempt is sending {key!r} right now: try again later")

    def _take_over(self, claim: Path) -> bool:
        """Move a stale claim (or anything that is no claim) out of the way; False if live."""
        # Only a taker-over ever moves a claim, and takers-over go one at a time: none can
        # move a claim another made fresh after its look. The kernel drops the lock of a
        # process that dies holding it, so it never goes stale itself.
        with _exclusive(self.folder / TAKE_OVER_LOCK):
            try:
                seen = os.lstat(claim)
            except FileNotFoundError:
                return True  # given back meanwhile
            if stat.S_ISREG(seen.st_mode) and time.time() - seen.st_mtime < STALE_CLAIM:
                return False
            # Its attempt died after claiming (or a link was planted there): moved aside by
            # rename, which never follows a link, then dropped.
            aside = claim.with_name(f"{claim.name}.{uuid.uuid4().hex}.stale")
            try:
                os.rename(claim, aside)
            except FileNotFoundError:
                return True
            _discard(aside)
            return True

    @staticmethod
    def _give_up(claim: Path, mine: os.stat_result) -> None:
        """Remove the claim if it is still the one this attempt made."""
        now = regular_file(claim)
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()

    def _prune(self) -> None:
        """Forget keys delivered long ago, at most once an hour per process."""
        now = time.time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        # Also the leftovers of attempts that died mid-write or mid-take-over.
        for pattern, keep in (("*.sent", KEEP_SENT), ("*.stale", 0.0), (".*.tmp", STALE_CLAIM)):
            for path in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    if now - os.lstat(path).st_mtime > keep:
                        path.unlink()


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (made if missing, never through a link)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _discard(path: Path) -> None:
    """Remove what was moved aside; a folder planted there is left for a person to look at."""
    with contextlib.suppress(OSError):
        path.unlink()
