"""`rollout status`, run in the test's own process against a real stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

import devstack
from starter.arguments import parser


async def rollout_status(
    stack: devstack.StackInfo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, str]:
    """`rollout status ARGV...` against the stack: its exit code and what it printed."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", stack.temporal_address)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", stack.namespace)
    capsys.readouterr()
    args = parser().parse_args(["status", *argv])
    code: int = await args.run(args)
    return code, capsys.readouterr().out


async def status_json(
    stack: devstack.StackInfo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, dict[str, Any]]:
    """`rollout status ARGV... --json`: its exit code and the JSON it printed."""
    code, out = await rollout_status(stack, monkeypatch, capsys, *argv, "--json")
    shown: dict[str, Any] = json.loads(out)
    return code, shown


def flat(text: str) -> str:
    """Printed text with rich's line wrapping undone."""
    return " ".join(text.split())
