"""The report builder on recorded histories: facts read, tables and plots made, all formats."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.report.gather import build, read_histories
from activities.report.model import Report
from activities.report.render import folder_for, write
from activities.report.review import line_of, reason_kind, summarize

HISTORIES = Path(__file__).parent.parent / "histories"


async def report_of(name: str) -> Report:
    history = WorkflowHistory.from_json("rollout-demo", (HISTORIES / name).read_text())
    facts = await read_histories(pydantic_data_converter, [(None, list(history.events))])
    return await build(facts, None, "rollout-demo", prometheus=False)


async def test_a_rolled_back_run_has_its_incident() -> None:
    report = await report_of("rolled_back.json")
    assert report.state == "rolled_back"
    assert "in a row" in report.reason
    # The stages as they ran: the first shift, then the restore that ended the rollout.
    assert [s.weight for s in report.stages] == [50, 0]
    assert report.stages[0].read_back == 50 and report.stages[-1].read_back == 0
    assert report.stages[0].end == report.stages[1].start
    failed = {g.gate: [c for c in g.checks if c.outcome == "fail"] for g in report.gates}
    assert any(failed.values())
    incident = report.incident
    assert incident is not None
    assert incident.first_failing_at is not None and incident.restored_at is not None
    assert incident.first_failing_at <= incident.at <= incident.restored_at
    assert incident.seconds_to_restore is not None and incident.seconds_to_restore >= 0
    row = next(r for r in incident.metrics if failed[r.metric])
    assert row.met is False and row.canary is not None
    kinds = [e.kind for e in report.timeline]
    assert "shift" in kinds and "read back" in kinds and kinds[-1] == "end"
    assert [e.at for e in report.timeline] == sorted(e.at for e in report.timeline)


async def test_a_drift_repaired_is_no_new_stage() -> None:
    report = await report_of("promoted.json")
    assert report.state == "promoted"
    assert [(s.name, s.weight) for s in report.stages] == [("ten", 10), ("full", 100)]
    shifts = [e.text for e in report.timeline if e.kind == "shift"]
    assert any(text.startswith("re-assert canary at 10% after drift") for text in shifts)


async def test_a_promoted_run_meets_its_baseline() -> None:
    report = await report_of("promoted.json")
    assert report.state == "promoted"
    assert report.incident is None
    assert report.stages[-1].weight == 100
    assert [s.weight for s in report.stages] == sorted(s.weight for s in report.stages)
    assert report.baseline and all(row.met is True for row in report.baseline)


async def test_every_format_is_written(tmp_path: Path) -> None:
    report = await report_of("rolled_back.json")
    folder = folder_for(tmp_path, report)
    assert folder.parent.name == report.service and folder.name == report.run_ids[0]
    written = write(report, folder)
    assert set(written) == {"md", "html", "json"}
    html = written["html"].read_text()
    # Opens offline: its images are in the page, and it links nothing it would fetch.
    assert html.count("data:image/png;base64,") == len(report.gates)
    assert "<script" not in html and 'src="http' not in html
    markdown = written["md"].read_text()
    assert "## Incident" in markdown and "## Performance vs baseline" in markdown
    pngs = sorted(folder.glob("gate-*.png"))
    assert len(pngs) == len(report.gates)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert Report.model_validate(json.loads(written["json"].read_text())) == report


async def test_the_review_adds_runs_up() -> None:
    rolled = await report_of("rolled_back.json")
    promoted = await report_of("promoted.json")
    back, done = line_of(rolled), line_of(promoted)
    assert back.detect_s is not None and back.restore_s is not None
    assert back.detect_s > 0 and done.seconds is not None and done.detect_s is None
    review = summarize(
        [back, done], Counter({"error-rate": 2}), done.started_at, back.started_at, None
    )
    assert (review.count, review.promoted, review.rolled_back) == (2, 1, 1)
    assert review.median_promote_s == done.seconds
    assert review.median_restore_s == back.restore_s
    assert list(review.rollback_reasons) == [reason_kind(rolled.reason)]
    assert review.failing_gates == {"error-rate": 2}


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (
            "error-rate: canary 26% vs stable 0%, failed 2 check(s) in a row; p95: 1s > 0.5s,"
            " failed 3 check(s) in a row",
            "gate error-rate, p95",
        ),
        ("rollout was cancelled", "cancelled"),
        ("shift failed: HAProxy refused", "shift failed"),
        ("", "no reason given"),
    ],
)
def test_rollback_reasons_are_counted_by_kind(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind
