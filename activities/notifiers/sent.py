"""Which messages were delivered: a folder of small files, one per key, so none goes twice.

Temporal retries an activity whose worker died or whose result got lost, and it cannot know
whether the message left before that happened. Each delivery therefore first claims its key
(an exclusive create, atomic on local and network file systems alike), sends, then renames
the claim to ``.sent`` (atomic too). A retry finds ``.sent`` and sends nothing; it finds a
fresh claim while another attempt still sends and backs off; a claim older than
``STALE_CLAIM`` belongs to an attempt that died before it could say, and is taken over. A
failed send gives its claim back, so the retry tries again. Workers that share the folder
(a volume) share the record; the one moment a message can still go twice is a worker dying
between the receiver's "OK" and the rename, which no sender can close without the
receiver's help.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from activities.errors import NotifierUnreachable

NOTIFY_DIR_ENV = "ROLLOUT_NOTIFY_DIR"
STALE_CLAIM = 120.0  # seconds: well past the notify activity's start-to-close timeout (30 s)
KEEP_SENT = 30 * 86_400.0  # seconds a delivered key is remembered
PRUNE_EVERY = 3_600.0


def default_folder() -> Path:
    """$ROLLOUT_NOTIFY_DIR, else a folder of this user's in the temporary folder."""
    configured = os.environ.get(NOTIFY_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"rollout-notices-{os.getuid()}"


class SentRecord:
    """Delivered keys, kept as files in ``folder``."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else default_folder()
        self._pruned_at = 0.0

    def _path(self, key: str, suffix: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.folder / f"{digest}{suffix}"

    def delivered(self, key: str) -> bool:
        """Whether a message under ``key`` went out already."""
        return self._path(key, ".sent").exists()

    async def once(self, key: str, send: Callable[[], Awaitable[None]]) -> bool:
        """Run ``send`` unless ``key`` was delivered; True when it ran and succeeded."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prune()
        sent, claim = self._path(key, ".sent"), self._path(key, ".claim")
        if sent.exists():
            return False
        self._claim(claim, key)
        try:
            await send()
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()
            raise
        os.replace(claim, sent)
        return True

    def _claim(self, claim: Path, key: str) -> None:
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                age = time.time() - claim.stat().st_mtime
            except FileNotFoundError:  # given back meanwhile: try once more
                age = STALE_CLAIM
            if age < STALE_CLAIM:
                raise NotifierUnreachable(
                    f"another attempt is sending {key!r} right now: try again later"
                ) from None
            # Its attempt died after claiming: take the claim over, fresh.
            fresh = claim.with_suffix(f".{os.getpid()}.tmp")
            fresh.write_text(key)
            os.replace(fresh, claim)
            return
        with os.fdopen(fd, "w") as file:
            file.write(key)

    def _prune(self) -> None:
        """Forget keys delivered long ago, at most once an hour per process."""
        now = time.time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        for path in self.folder.glob("*.sent"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > KEEP_SENT:
                    path.unlink()
