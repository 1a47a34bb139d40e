"""Help that says what each command and option does, the exit codes and the environment."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import devstack
import starter.dev_commands
from devstack.info import DEFAULT_PORTS, stack_info
from starter.cli import main, parser
from tests.unit.test_cli import no_temporal, run  # noqa: F401 (autouse fixture)

WORKER = str(Path(sys.executable).parent / "rollout-worker")
ENVIRONMENT = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ROLLOUT_DIR", "ROLLOUT_TASK_QUEUE")
WORKER_ENVIRONMENT = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_PROFILE",
    "temporal.toml",
    "ROLLOUT_TASK_QUEUE",
    "ROLLOUT_WORKER_METRICS",
    "bearer_token_env",
    "webhook_url_env",
    "TEMPORAL_UI_URL",
    "ROLLOUT_TEMPLATE_DIR",
    "ROLLOUT_NOTIFY_DIR",
)


def commands(
    root: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str | None, argparse.ArgumentParser]]:
    """Every (sub)command under root: its words, its help in the list, and its parser."""
    for action in root._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            yield (*path, name), helps.get(name), sub
            yield from commands(sub, (*path, name))


def is_real_help(text: str | None, *names: str) -> bool:
    """More than the name again, e.g. not 'rollback a rollout' for rollback."""
    if not text or text == argparse.SUPPRESS:
        return False
    words = {w.strip(".,;:()'`").lower() for w in text.split()}
    filler = {"a", "an", "the", "rollout", "rollouts", *(n.lower().strip("-") for n in names)}
    return len(words - filler) >= 2


def test_every_command_has_real_help() -> None:
    found = list(commands(parser()))
    assert len(found) >= 17
    for words, help_, sub in found:
        assert is_real_help(help_, *words), f"rollout {' '.join(words)}: help {help_!r}"
        assert is_real_help(sub.description, *words), (
            f"rollout {' '.join(words)}: description {sub.description!r}"
        )


def test_every_option_and_argument_has_real_help() -> None:
    for words, _, sub in commands(parser()):
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            names = [action.dest, *action.option_strings]
            assert is_real_help(action.help, *names), (
                f"rollout {' '.join(words)} {'/'.join(names)}: help {action.help!r}"
            )


def test_each_operator_command_says_what_it_does() -> None:
    helps = {words[-1]: help_ for words, help_, _ in commands(parser())}
    texts = {helps[name] for name in ("pause", "resume", "approve", "promote", "rollback")}
    texts |= {helps["abort"], helps["retry"]}
    assert len(texts) == 7


def test_top_level_help_names_exit_codes_environment_and_server_choice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    codes = out.split("exit codes:")[1].split("environment:")[0]
    rows = {line.split()[0]: line for line in codes.splitlines() if line.strip()}
    for code, meaning in (
        ("0", "promoted"),
        ("1", "error"),
        ("2", "invalid plan"),
        ("3", "rolled back"),
        ("4", "aborted"),
        ("5", "no worker answered"),
        ("130", "interrupted"),
    ):
        assert meaning in rows.get(code, ""), (code, codes)
    for name in ENVIRONMENT:
        assert name in out
    assert "temporal.toml" in out
    assert "./.rollout" in out and "localhost:7233" in out


def test_subcommand_help_names_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["start", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit 0 promoted, 3 rolled back, 4 aborted" in out


def test_rollout_worker_help_exits_0_without_connecting(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
    }
    done = subprocess.run(
        [WORKER, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "usage: rollout-worker" in done.stdout
    for name in WORKER_ENVIRONMENT:
        assert name in done.stdout, name
    assert "exit codes:" in done.stdout and "SIGTERM" in done.stdout


def test_rollout_worker_usage_error_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run(
        [WORKER, "--no-such-option"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "usage: rollout-worker" in done.stderr


def test_rollout_worker_exits_1_when_temporal_is_unreachable(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
    }
    done = subprocess.run([WORKER], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def fake_stack(directory: Path) -> devstack.StackInfo:
    ports = {name: 40000 + i for i, name in enumerate(DEFAULT_PORTS)}
    return stack_info(directory, ports)


@pytest.mark.parametrize("reused", [False, True], ids=["started", "already-running"])
def test_dev_up_prints_how_to_use_and_stop_this_stack(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    reused: bool,
) -> None:
    directory = tmp_path / "my stack"
    info = fake_stack(directory).model_copy(update={"reused": reused})
    monkeypatch.setattr(devstack, "up", lambda dir, **options: info)

    assert run(["dev", "up", "--dir", str(directory)]) == 0

    captured = capsys.readouterr()
    assert f'"dir": "{directory}"' in captured.out
    lines = captured.err.splitlines()
    quoted = f"'{directory}'"
    assert f"stop it with: rollout dev down --dir {quoted}" in lines
    assert f"use it from any folder: export ROLLOUT_DIR={quoted}" in lines
    assert f"  (or: export TEMPORAL_ADDRESS={info.temporal_address})" in lines


def test_dev_down_without_a_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["dev", "down", "--dir", str(tmp_path / "none")]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_in_process_calls_raise_system_exit_with_the_code() -> None:
    # Only the `rollout` program itself (no argv) ends the process with os._exit.
    with pytest.raises(SystemExit) as exit_:
        main(["nosuch"])
    assert exit_.value.code == 2


def test_an_unexpected_error_prints_its_traceback_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("something nobody expected")

    monkeypatch.setattr(starter.dev_commands, "cmd_dev_down", broken)
    assert run(["dev", "down", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: something nobody expected" in err


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(starter.dev_commands, "cmd_dev_down", interrupted)
    assert run(["dev", "down", "--dir", str(tmp_path)]) == 130
