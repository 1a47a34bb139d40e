"""`rollout validate` and the parser on fleet plans, offline."""

from __future__ import annotations

import pytest

from starter.arguments import parser
from tests.unit.test_cli import flat, no_temporal, run, write_plan  # noqa: F401
from tests.unit.test_fleet_plan import fleet


def test_validate_a_fleet_plan_lists_its_waves(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", write_plan(fleet())]) == 0
    shown = flat(capsys.readouterr().out)
    assert "is a valid release of checkout to 4 targets (release-checkout)" in shown
    assert "wave 2: eu (approval first)" in shown
    assert "wave 3: us-west, us-east (max 2 at once, 30m after the previous wave)" in shown
    assert "us-east: haproxy us-east via tcp://127.0.0.1:9999: 10% -> 100%" in shown


def test_an_invalid_fleet_plan_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = fleet()
    data["waves"][0]["targets"] = ["mars"]
    assert run(["validate", write_plan(data)]) == 2
    assert "waves.0.targets: unknown target 'mars'" in flat(capsys.readouterr().err)


def test_commands_and_status_take_a_target() -> None:
    args = parser().parse_args(["pause", "checkout", "--target", "us-east", "--by", "kim"])
    assert (args.service, args.target, args.command) == ("checkout", "us-east", "pause")
    assert parser().parse_args(["status", "checkout", "--target", "eu"]).target == "eu"
    assert parser().parse_args(["approve", "checkout"]).target is None
