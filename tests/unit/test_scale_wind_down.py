"""benchmarks/scale.py: a server that cannot answer the terminates does not keep its worker."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from temporalio.service import RPCError, RPCStatusCode

from benchmarks.scale import wind_down
from devstack.processes import pid_alive, spawn


class Unanswered:
    """A workflow handle whose terminate times out, as a saturated dev server's did."""

    def __init__(self) -> None:
        self.asked = 0

    async def terminate(self, reason: str) -> None:
        self.asked += 1
        raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")


async def test_the_worker_stops_when_every_terminate_times_out(tmp_path: Path) -> None:
    pid = spawn([sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "w.log")
    handles = [Unanswered(), Unanswered()]
    try:
        await wind_down(handles, {"worker": pid})
        assert not pid_alive(pid)
        assert [h.asked for h in handles] == [1, 1]
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
