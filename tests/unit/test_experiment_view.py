"""What `rollout validate`, `status` and `promote` show and take for an experiment."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from activities.report import experiment
from plans import GateOutcome, Verdict
from plans.runtime.experiment import (
    ExperimentProgress,
    ExperimentState,
    ExperimentStatus,
    VariantStatus,
)
from starter import experiment_view
from starter.arguments import parser
from starter.exits import EXIT_PROMOTED, EXIT_ROLLED_BACK
from tests.unit.test_experiment_plan import BASE, parse_experiment_plan
from workflows.experiment import decisions


def test_validate_lists_the_variants_and_the_gates() -> None:
    plan = parse_experiment_plan(dict(BASE))
    lines = experiment_view.validate_lines("exp.yaml", plan)
    assert lines[0] == "ok: exp.yaml is a valid experiment for shop (rollout-shop)"
    assert "  a: 50% (control)" in lines and "  b: 50%" in lines
    assert "guardrails: errors, errors-now" in lines[3]


def ended() -> ExperimentStatus:
    primary = Verdict(
        gate="conversion",
        outcome=GateOutcome.PASS,
        reason="rate x1.2 [x1.08, x1.33] vs allowed x1",
        effect=1.2,
        effect_low=1.08,
        effect_high=1.33,
        at=datetime.now(UTC),
    )
    guard = Verdict(gate="errors", outcome=GateOutcome.PASS, at=datetime.now(UTC))
    status = ExperimentStatus(
        service="shop",
        state=ExperimentState.ROLLED_FORWARD,
        control="a",
        primary="conversion",
        confidence=0.99,
        better="higher",
        variants=[
            VariantStatus(name="a", control=True, share=0, planned_share=50),
            VariantStatus(
                name="b",
                share=100,
                planned_share=25,
                better=True,
                primary=primary,
                guardrails={"errors": guard},
            ),
            VariantStatus(name="c", share=0, planned_share=25, out="guardrail errors failed"),
        ],
        winner="b",
        reason="b shown better than a",
        elapsed_s=5400,
        max_duration_s=86400,
    )
    return status


def test_status_shows_each_variant_s_share_effect_and_guardrails() -> None:
    status = ended()
    text = experiment_view.view(status)
    assert "shop[/] experiment: rolled forward (1h30m of 1d" in text
    assert "judged at 99.00% per variant" in text
    assert "  b 100% conversion: x1.2 [x1.08, x1.33] [green]better[/]" in text
    assert "      guardrail errors: pass" in text
    assert "  c 0% [red]out[/]: guardrail errors failed" in text
    assert "winner: [green]b[/]" in text
    assert experiment_view.exit_code(status.state) == EXIT_PROMOTED
    assert experiment_view.exit_code(ExperimentState.KEPT_CONTROL) == EXIT_PROMOTED
    assert experiment_view.exit_code(ExperimentState.ROLLED_BACK) == EXIT_ROLLED_BACK


def test_promote_takes_the_variant_to_roll_forward() -> None:
    args = parser().parse_args(["promote", "shop", "--variant", "b"])
    assert args.variant == "b"
    assert parser().parse_args(["rollback", "shop"]).command == "rollback"


def test_the_report_holds_each_variant_s_effect_and_the_winner(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    path = experiment.write(ended(), root, "run-1", "ROLLOUT_REPORT_DIR")["md"]
    assert path == root / "shop" / "run-1" / "experiment.md"
    text = path.read_text()
    assert "# Experiment of shop: rolled forward" in text and "Winner: **b**" in text
    assert "| b | 100% | 25% | x1.2 [x1.08, x1.33] | yes | errors pass | - |" in text
    assert "| c | 0% | 25% | not measured | no | - | guardrail errors failed |" in text
    assert "- b: rate x1.2 [x1.08, x1.33] vs allowed x1" in text
    saved = ExperimentStatus.model_validate_json((path.parent / "experiment.json").read_text())
    assert saved.winner == "b"
    assert "experiment-effect.png" not in text  # no trail, no plot
    assert not (path.parent / "experiment-effect.png").exists()


def test_the_report_plots_each_variant_s_effect_over_the_checks(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    progress = ExperimentProgress()
    for check in range(1, 1001):
        narrowing = 1 / check**0.5
        verdict = Verdict(
            gate="conversion",
            kind="sequential",
            outcome=GateOutcome.PASS,
            effect=1.2,
            effect_low=1.2 - narrowing,
            effect_high=1.2 + narrowing,
            at=start,
        )
        decisions.trace(progress, "b", verdict, start + timedelta(minutes=check))
    trail = progress.trail["b"]
    # Thinned, never past TRAIL_POINTS: the whole experiment at a coarser step.
    assert len(trail) <= decisions.TRAIL_POINTS
    assert trail[0].at == start + timedelta(minutes=1)
    assert trail[-1].at == start + timedelta(minutes=1000)
    assert all(a.at < b.at for a, b in itertools.pairwise(trail))
    path = experiment.write(ended(), tmp_path, "run-1", "ROLLOUT_REPORT_DIR", progress.trail)["md"]
    assert "![each variant's conversion over a's](experiment-effect.png)" in path.read_text()
    png = (path.parent / "experiment-effect.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
