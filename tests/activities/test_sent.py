"""The record of sent keys: claim, send, mark sent; a failed send gives its claim back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from activities.errors import NotifierUnreachable
from activities.notifiers.sent import STALE_CLAIM, SentRecord


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
