"""The `rollout` command line, run in-process: exit codes and what people read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import starter.rollout_commands
from starter.cli import EXIT_ERROR, EXIT_INVALID, main

VALID_PLAN: dict[str, Any] = {
    "service": "shop",
    "stable": "shop-v1",
    "canary": "shop-v2",
    "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "shop"},
    "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
    "gates": [
        {"name": "errors", "query": 'rate(e{s="$canary"}[1m])', "max": 0.01},
        {"name": "latency", "query": 'p99{s="$canary"}', "max": 0.3},
    ],
    "stages": [
        {"name": "ten", "weight": 10, "bake": "5m", "check_every": "30s", "gates": ["errors"]},
        {"name": "half", "weight": 50, "bake": "1h30m", "approval": True},
        {"name": "all", "weight": 100, "bake": "10m"},
    ],
}

INVALID_PLAN: dict[str, Any] = {
    **VALID_PLAN,
    "service": "shop front",
    "metrics": {"kind": "prometheus", "url": "prometheus:9090"},
    "stages": [
        {"name": "ten", "weight": 150},
        {"name": "all", "wieght": 100},
    ],
}


def run(argv: list[str]) -> int:
    """Run the CLI; the exit code it ends with."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    code = exit_.value.code
    return 0 if code is None else int(code)


def flat(text: str) -> str:
    # The console wraps long lines; compare words, not line breaks.
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def no_temporal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the CLI at an address where nothing listens, and away from any dev stack."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-temporal.toml"))
    monkeypatch.setenv("ROLLOUT_DIR", str(tmp_path / "stack"))
    for name in ("TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE", "TEMPORAL_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def write_plan(data: Any, name: str = "plan.yaml") -> str:
    Path(name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return name


def test_validate_a_valid_plan(capsys: pytest.CaptureFixture[str]) -> None:
    path = write_plan(VALID_PLAN)

    assert run(["validate", path]) == 0

    captured = capsys.readouterr()
    out = flat(captured.out)
    assert "ok: plan.yaml is a valid plan for shop (rollout-shop)" in out
    assert "1. ten: 10% for 5m, checks every 30s (errors)" in out
    assert "2. half: 50% for 1h30m, checks every 1m (errors, latency), then approval" in out
    assert "3. all: 100% for 10m, checks every 1m (errors, latency)" in out
    assert captured.err == ""


def test_validate_an_invalid_plan_names_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    path = write_plan(INVALID_PLAN)

    assert run(["validate", path]) == EXIT_INVALID

    captured = capsys.readouterr()
    err = flat(captured.err)
    assert captured.out == ""
    assert "plan.yaml is not valid (5 problem(s))" in err
    assert "service: 'shop front' is not a safe name" in err
    assert "metrics.url: 'prometheus:9090': write the Prometheus URL as http(s)://host:port" in err
    assert "stages.0.weight: weight 150 is out of range" in err
    assert "stages.1.weight: missing: this field is required" in err
    assert "stages.1.wieght: unknown field: remove it or check its spelling" in err
    assert "Traceback" not in captured.err


def test_validate_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", "nowhere.yaml"]) == EXIT_INVALID
    captured = capsys.readouterr()
    assert "cannot read nowhere.yaml: No such file or directory" in flat(captured.err)
    assert "Traceback" not in captured.err


def test_validate_invalid_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    Path("plan.yaml").write_text("service: [shop\n", encoding="utf-8")
    assert run(["validate", "plan.yaml"]) == EXIT_INVALID
    assert "not valid YAML" in capsys.readouterr().err


def test_validate_a_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str]) -> None:
    Path("plan.yaml").write_bytes(b"service: sh\xf6p\n")
    assert run(["validate", "plan.yaml"]) == EXIT_INVALID
    assert "plan.yaml" in capsys.readouterr().err


MARKUP_BUG = (
    "errors are printed through rich markup unescaped: '[...]' in a value or a path is"
    " taken as a style tag and dropped, and '[/]' raises MarkupError with a traceback"
)


def test_a_closing_tag_in_a_value_is_printed_verbatim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_plan({**VALID_PLAN, "service": "shop[/]"})
    assert run(["validate", path]) == EXIT_INVALID
    assert "service: 'shop[/]' is not a safe name" in flat(capsys.readouterr().err)


def test_brackets_in_a_plan_path_are_printed_verbatim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("[staging]").mkdir()
    path = write_plan({**VALID_PLAN, "stable": "a b"}, "[staging]/plan.yaml")
    assert run(["validate", path]) == EXIT_INVALID
    assert "[staging]/plan.yaml is not valid" in flat(capsys.readouterr().err)


def test_start_with_an_invalid_plan_never_contacts_temporal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_client() -> None:
        raise AssertionError("start connected to Temporal with an invalid plan")

    monkeypatch.setattr(starter.rollout_commands, "connect_client", no_client)
    path = write_plan(INVALID_PLAN)

    assert run(["start", path, "--follow"]) == EXIT_INVALID

    captured = capsys.readouterr()
    assert "stages.0.weight" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["pause", "shop"],
        ["approve", "shop", "--reason", "looks good", "--by", "ana"],
        ["status", "shop"],
        ["list"],
    ],
    ids=lambda argv: argv[0],
)
def test_commands_when_temporal_is_unreachable(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert run(argv) == EXIT_ERROR

    captured = capsys.readouterr()
    err = flat(captured.err)
    assert "cannot reach Temporal at 127.0.0.1:1" in err
    assert "Set TEMPORAL_ADDRESS, or start the dev stack with `rollout dev up`" in err
    assert "Traceback" not in captured.err


def test_start_with_a_valid_plan_when_temporal_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_plan(VALID_PLAN)
    assert run(["start", path]) == EXIT_ERROR
    assert "cannot reach Temporal at 127.0.0.1:1" in flat(capsys.readouterr().err)


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in (
        "validate",
        "start",
        "status",
        "pause",
        "resume",
        "approve",
        "promote",
        "rollback",
        "list",
        "setup",
        "dev",
        "demo",
    ):
        assert command in out


def test_a_command_needs_a_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pause"]) == 2
    assert "service" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2
    assert "usage: rollout" in capsys.readouterr().err


def test_a_profile_address_wins_over_a_dev_stack(tmp_path, monkeypatch) -> None:
    from starter import server as connection

    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    assert not connection.address_configured()
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.default]\naddress = "temporal.example:7233"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile))
    assert connection.address_configured()
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    assert connection.address_configured()
