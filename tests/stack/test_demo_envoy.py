"""`rollout demo --router envoy --faulty`: the real CLI, the real stack, Envoy rolled back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import devstack
from demo.configs import ENVOY_RUNTIME_PREFIX
from devstack.info import load

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLLOUT = str(Path(sys.executable).parent / "rollout")


@pytest.mark.timeout(600)
def test_faulty_demo_through_envoy_rolls_back_and_exits_3(
    stack_binaries: None, tmp_path: Path
) -> None:
    folder = tmp_path / "stack"
    try:
        done = subprocess.run(
            [ROLLOUT, "demo", "--router", "envoy", "--faulty", "--dir", str(folder)],
            capture_output=True,
            text=True,
            timeout=540,
        )
        info = load(folder)
        assert info.router == "envoy" and info.envoy_admin and info.envoy_url
        runtime = httpx.get(f"{info.envoy_admin}/runtime", trust_env=False).json()
        answers = {
            httpx.get(info.envoy_url, trust_env=False).headers.get("X-Version") for _ in range(30)
        }
    finally:
        devstack.down(folder)
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fault injected" in done.stdout and "rolled_back" in done.stdout, done.stdout
    entries = runtime["entries"]
    assert entries[f"{ENVOY_RUNTIME_PREFIX}.canary"]["final_value"] == "0"
    assert entries[f"{ENVOY_RUNTIME_PREFIX}.stable"]["final_value"] == "100"
    assert answers == {"stable"}
