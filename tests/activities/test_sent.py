"""The record of sent keys: claim, send, mark sent; a failed send gives its claim back.

Also: the record lives in a folder the worker owns, links planted in it are never followed,
and a dead attempt's claim is taken over by one attempt only.
"""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from activities.errors import NotifierUnreachable
from activities.notifiers.sent import STALE_CLAIM, SentRecord
from activities.storage import StoreRefused


class Receiver:
    def __init__(self, fail: int = 0) -> None:
        self.got = 0
        self.fail = fail

    async def send(self) -> None:
        if self.fail:
            self.fail -= 1
            raise NotifierUnreachable("receiver away")
        self.got += 1


async def test_a_key_is_sent_once(tmp_path: Path) -> None:
    record, receiver = SentRecord(tmp_path), Receiver()
    assert await record.once("rollout-a/run/promoted/3/9/team", receiver.send)
    assert not await record.once("rollout-a/run/promoted/3/9/team", receiver.send)
    assert await record.once("rollout-a/run/promoted/3/9/oncall", receiver.send)
    assert receiver.got == 2
    # Another record over the same folder (a restarted worker) knows it too.
    assert SentRecord(tmp_path).delivered("rollout-a/run/promoted/3/9/team")


async def test_a_failed_send_can_be_tried_again(tmp_path: Path) -> None:
    record, receiver = SentRecord(tmp_path), Receiver(fail=1)
    with pytest.raises(NotifierUnreachable):
        await record.once("k", receiver.send)
    assert not record.delivered("k")
    assert await record.once("k", receiver.send)
    assert receiver.got == 1


async def test_a_claim_in_flight_holds_off_a_second_sender(tmp_path: Path) -> None:
    record, receiver = SentRecord(tmp_path), Receiver()
    claim = record._path("k", ".claim")
    tmp_path.mkdir(exist_ok=True)
    claim.write_text("k")  # another attempt is sending right now
    with pytest.raises(NotifierUnreachable, match="another attempt is sending"):
        await record.once("k", receiver.send)
    assert receiver.got == 0
    # That attempt died long ago without a word: its claim is taken over.
    past = time.time() - STALE_CLAIM - 1
    os.utime(claim, (past, past))
    assert await record.once("k", receiver.send)
    assert receiver.got == 1 and record.delivered("k") and not claim.exists()


def planted_link(at: Path, victim: Path, *, old: bool = False) -> None:
    """A link at ``at`` to ``victim``; ``old``: as old as a dead attempt's claim."""
    at.symlink_to(victim)
    if old:
        past = time.time() - STALE_CLAIM - 1
        os.utime(at, (past, past), follow_symlinks=False)


async def test_a_link_planted_at_a_claim_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    record, receiver = SentRecord(tmp_path / "record"), Receiver()
    record.ready()
    planted_link(record._path("k", ".claim"), victim, old=True)
    # The name the earlier take-over wrote through, predictable from the process id.
    planted_link(record._path("k", f".{os.getpid()}.tmp"), victim)
    assert await record.once("k", receiver.send)
    assert receiver.got == 1 and record.delivered("k")
    assert victim.read_text() == "untouched"
    assert not record._path("k", ".claim").exists()


async def test_a_link_planted_at_a_sent_record_is_neither_believed_nor_followed(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    record, receiver = SentRecord(tmp_path / "record"), Receiver()
    record.ready()
    sent = record._path("k", ".sent")
    planted_link(sent, victim)
    assert not record.delivered("k")
    assert await record.once("k", receiver.send)
    assert receiver.got == 1
    assert victim.read_text() == "untouched"
    assert not sent.is_symlink() and sent.read_text() == "k"
    assert stat.S_IMODE(sent.lstat().st_mode) == 0o640


def test_a_stale_claim_is_taken_over_by_one_attempt_only(tmp_path: Path) -> None:
    """Attempts that all find the same dead claim at once: one sends, the others hold off."""
    attempts, rounds = 6, 15
    folder = tmp_path / "record"
    SentRecord(folder).ready()
    sends: list[str] = []
    guard = threading.Lock()

    def attempt(key: str, start: threading.Barrier) -> str:
        async def send() -> None:
            with guard:
                sends.append(key)
            await asyncio.sleep(0.05)  # long enough that the others meet the new claim

        start.wait()
        try:
            return "sent" if asyncio.run(SentRecord(folder).once(key, send)) else "already"
        except NotifierUnreachable:
            return "held off"

    for round_ in range(rounds):
        key = f"rollout-a/run/rollback_started/{round_}/team"
        claim = SentRecord(folder)._path(key, ".claim")
        claim.write_text(key)
        past = time.time() - STALE_CLAIM - 1
        os.utime(claim, (past, past))
        start = threading.Barrier(attempts)
        with ThreadPoolExecutor(attempts) as pool:
            runs = [pool.submit(attempt, key, start) for _ in range(attempts)]
            outcomes = [run.result() for run in runs]
        assert outcomes.count("sent") == 1, outcomes
        assert sends.count(key) == 1
        assert SentRecord(folder).delivered(key)


async def test_the_record_lives_in_the_workers_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLOUT_NOTIFY_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    record, receiver = SentRecord(), Receiver()
    key = f"rollout-a/run/promoted/{uuid.uuid4().hex}/team"
    assert await record.once(key, receiver.send)
    folder = home / ".local" / "state" / "durable-rollouts" / "notices"
    assert record.folder == folder
    sent = record._path(key, ".sent")
    assert sent.parent == folder and sent.read_text() == key
    assert stat.S_IMODE(sent.stat().st_mode) == 0o640
    for made in (folder, folder.parent, home / ".local" / "state", home / ".local"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o750, made
    # Not in the temporary folder under a name anyone can guess (and plant first).
    predictable = Path(tempfile.gettempdir()) / f"rollout-notices-{os.getuid()}"
    assert not (predictable / sent.name).exists()
    # XDG_STATE_HOME, when set, is where the state folder is.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert SentRecord().folder == tmp_path / "state" / "durable-rollouts" / "notices"


async def test_a_record_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    receiver = Receiver()
    with pytest.raises(StoreRefused, match=r"may be written by others \(mode 777\).*chmod go-w"):
        await SentRecord(folder).once("k", receiver.send)
    assert receiver.got == 0
