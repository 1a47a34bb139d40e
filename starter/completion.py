"""`rollout completion bash|zsh`: shell completion generated from `rollout`'s own parser."""

from __future__ import annotations

import argparse

import shtab

from starter.arguments import parser


def script(shell: str) -> str:
    """The completion script for ``shell``: every command, option and choice of the parser."""
    text: str = shtab.complete(parser(), shell=shell)
    return text


def cmd_completion(args: argparse.Namespace) -> int:
    print(script(args.shell))
    return 0
