"""The plan's notify section: channels, events and severities, templates; messages per event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.notifiers.messages import RunLink, render
from plans import (
    AppriseChannel,
    EventKind,
    GateOutcome,
    Notice,
    Notification,
    PlanError,
    Severity,
    StageBrief,
    Verdict,
    WebhookChannel,
    load_plan,
    parse_plan,
)
from plans.experiment import ExperimentPlan, load_any_plan
from plans.notify import SEVERITIES, WEBHOOK_EVENTS
from plans.plan import Plan
from plans.runtime.notices import ExperimentBrief, VariantBrief

from .test_plans import minimal


def with_notify(notify: dict[str, Any]) -> dict[str, Any]:
    data = minimal()
    data["notify"] = notify
    return data


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(PlanError) as caught:
        parse_plan(data)
    return str(caught.value)


# -- events and severities ---------------------------------------------------------------------


def test_every_event_has_a_severity() -> None:
    assert set(SEVERITIES) == set(EventKind)
    assert EventKind.ROLLED_BACK.severity is Severity.CRITICAL
    assert EventKind.STARTED.severity is Severity.INFO
    assert EventKind.PAUSED.severity is Severity.WARNING


def test_a_channel_hears_its_events_at_or_above_its_severity() -> None:
    oncall = AppriseChannel(name="oncall", url_env="MAIL_URL", min_severity=Severity.CRITICAL)
    assert [e for e in EventKind if oncall.hears(e)] == [
        EventKind.ROLLBACK_STARTED,
        EventKind.ROLLED_BACK,
        EventKind.RESTORE_FAILING,
    ]
    team = AppriseChannel(
        name="team",
        url_env="SLACK_URL",
        events=[EventKind.STARTED, EventKind.PROMOTED, EventKind.ROLLED_BACK],
    )
    assert [e for e in EventKind if team.hears(e)] == [
        EventKind.STARTED,
        EventKind.PROMOTED,
        EventKind.ROLLED_BACK,
    ]
    picky = AppriseChannel(
        name="picky", url_env="X", events=[EventKind.STARTED], min_severity=Severity.WARNING
    )
    assert not any(picky.hears(e) for e in EventKind)


def test_the_plans_webhook_hears_what_it_always_did() -> None:
    plan = parse_plan(with_notify({"webhook_url_env": "HOOK"}))
    heard = {e for e in EventKind if plan.notify.channels_for(e)}
    assert heard == set(WEBHOOK_EVENTS)
    assert EventKind.STAGE_PASSED not in heard  # new events are for channels only
    (hook,) = plan.notify.channels_for(EventKind.PROMOTED)
    assert hook == WebhookChannel(url_env="HOOK")


def test_channels_from_yaml() -> None:
    text = """
    channels:
      - {name: team-slack, url_env: ROLLOUT_SLACK_URL, events: [started, promoted, rolled_back]}
      - {name: oncall-mail, url_env: ROLLOUT_MAIL_URL, min_severity: critical}
    """
    plan = parse_plan(with_notify(yaml.safe_load(text)))
    names = [c.name for c in plan.notify.channels_for(EventKind.ROLLED_BACK)]
    assert names == ["team-slack", "oncall-mail"]
    assert [c.name for c in plan.notify.channels_for(EventKind.STARTED)] == ["team-slack"]
    assert plan.notify.channels_for(EventKind.DRIFT) == []


# -- validation ---------------------------------------------------------------------------------


def test_unknown_events_are_named() -> None:
    said = problems(with_notify({"channels": [{"name": "a", "url_env": "A", "events": ["x"]}]}))
    assert "notify.channels.0.events: unknown event(s) 'x': use started, stage_passed" in said


def test_bad_variable_names_are_refused() -> None:
    said = problems(with_notify({"channels": [{"name": "a", "url_env": "1-BAD"}]}))
    assert "notify.channels.0.url_env: '1-BAD' is not an environment variable name" in said


def test_a_url_instead_of_a_variable_is_refused_without_repeating_it() -> None:
    url = "https://hooks.slack.com/services/T000/B000/secretpart"
    said = problems(with_notify({"channels": [{"name": "a", "url_env": url}]}))
    assert "names the environment variable that holds the URL, not the URL itself" in said
    assert "secretpart" not in said


def test_unknown_severity_and_fields_are_refused() -> None:
    said = problems(
        with_notify({"channels": [{"name": "a", "url_env": "A", "min_severity": "loud"}]})
    )
    assert "notify.channels.0.min_severity" in said and "'info', 'warning' or 'critical'" in said
    said = problems(with_notify({"channels": [{"name": "a", "url_env": "A", "url": "x"}]}))
    assert "notify.channels.0.url: unknown field" in said


def test_channel_names_differ() -> None:
    channels = [{"name": "a", "url_env": "A"}, {"name": "a", "url_env": "B"}]
    said = problems(with_notify({"channels": channels}))
    assert "channel names must differ: a used twice" in said


def write_plan(tmp_path: Path, templates: str) -> Path:
    data = with_notify(
        {"channels": [{"name": "a", "url_env": "A"}], "templates": {"dir": templates}}
    )
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_template_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(write_plan(tmp_path, "./no-such-folder"))
    assert "notify.templates.dir:" in str(caught.value)
    assert "no-such-folder is not a folder: create it, or remove notify.templates" in str(
        caught.value
    )


def test_template_folder_is_checked_and_made_absolute(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "promotd.j2").write_text("typo")
    (folder / "started.j2").write_text("{% if %}")
    with pytest.raises(PlanError) as caught:
        load_plan(write_plan(tmp_path, "./templates"))
    said = str(caught.value)
    assert "promotd.j2 is not a template name: use <event>.j2" in said
    assert "started.j2 line 1:" in said
    (folder / "promotd.j2").unlink()
    (folder / "started.j2").write_text("Started {{ service }}\n{% include '_footer.j2' %}")
    (folder / "_footer.j2").write_text("bye")
    plan = load_plan(write_plan(tmp_path, "./templates"))
    assert plan.notify.templates is not None
    assert plan.notify.templates.dir == str(folder.resolve())


def test_start_and_validate_read_the_templates_folder_as_load_plan_does(tmp_path: Path) -> None:
    # `rollout start` and `rollout validate` read any plan: a rollout's or an experiment's.
    path = write_plan(tmp_path, "./templates")
    with pytest.raises(PlanError, match="templates is not a folder"):
        load_any_plan(path)
    (tmp_path / "templates").mkdir()
    rollout = load_any_plan(path)
    assert isinstance(rollout, Plan) and rollout.notify.templates is not None
    assert rollout.notify.templates.dir == str((tmp_path / "templates").resolve())
    data = yaml.safe_load(path.read_text())
    for field in ("stable", "canary", "stages"):
        data.pop(field, None)
    data["experiment"] = {
        "control": "a",
        "variants": [{"name": "a", "share": 50}, {"name": "b", "share": 50}],
        "primary": "conversion",
    }
    data["gates"] = [{"name": "conversion", "preset": "haproxy-success-rate", "kind": "sequential"}]
    path.write_text(yaml.safe_dump(data))
    experiment = load_any_plan(path)
    assert isinstance(experiment, ExperimentPlan) and experiment.plan.notify.templates
    assert experiment.plan.notify.templates.dir == str((tmp_path / "templates").resolve())


# -- messages from templates ---------------------------------------------------------------------

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LINK = RunLink("prod", "rollout-checkout", "run-1")
VERDICTS = [
    Verdict(
        gate="error-rate",
        outcome=GateOutcome.PASS,
        value=0.0012,
        threshold="<= stable x1.5+0.1%",
        canary=0.0012,
        stable=0.0009,
        kind="relative",
        at=AT,
    ),
    Verdict(gate="p95-latency", outcome=GateOutcome.PASS, value=0.245, threshold="<= 0.5", at=AT),
]
STAGES = [
    StageBrief(name="canary", weight=10, bake_s=600),
    StageBrief(name="half", weight=50, bake_s=600, approval=True),
    StageBrief(name="full", weight=100, bake_s=600),
]

# What each event's message must say, beyond the service and version in its title.
EXPECTED: dict[EventKind, list[str]] = {
    EventKind.STARTED: ["started", "Strategy: canary 10% → 50% → 100%", "about 30m", "1. canary"],
    EventKind.STAGE_PASSED: ["stage 2/3 half (50%) passed", "error-rate", "0.0012", "full (100%)"],
    EventKind.AWAITING_APPROVAL: ["awaits approval", "rollout approve checkout"],
    EventKind.PAUSED: ["paused at half", "Reason: error-rate is failing", "rollout resume"],
    EventKind.GATE_FAILING: ["needs a look", "Reason: error-rate is failing"],
    EventKind.DEADLINE_MISSED: ["missed a deadline", "Reason: error-rate is failing"],
    EventKind.PROMOTED: ["promoted: 100% of traffic", "Why: error-rate is failing"],
    EventKind.ROLLBACK_STARTED: ["Rollback of", "ETA: under a minute", "restore canary to 0%"],
    EventKind.ROLLED_BACK: ["rolled back", "Restored: restore canary to 0%", "0.0009"],
    EventKind.ABORTED: ["aborted", "Restored: restore canary to 0%"],
    EventKind.RESTORE_FAILING: ["cannot restore traffic yet", "keeps retrying"],
    EventKind.DRIFT: ["drifted", "error-rate is failing"],
    EventKind.HOOK_FAILED: ["a hook failed at half", "Reason: error-rate is failing"],
    EventKind.OVERRIDDEN: ["release window or freeze was overridden", "error-rate is failing"],
    EventKind.BAKE_EXTENDED: ["the bake of half (50%) was extended", "error-rate is failing"],
    EventKind.NO_WINNER: ["no winner, stable keeps all traffic", "Why: error-rate is failing"],
}


def notice(kind: EventKind, **fields: Any) -> Notification:
    data: dict[str, Any] = {
        "kind": kind,
        "key": f"rollout-checkout/run-1/{kind.value}/1/3",
        "service": "checkout",
        "version": "v2.4.1",
        "stage": "half",
        "stage_index": 1,
        "stage_count": 3,
        "weight": 50,
        "stages": STAGES,
        "verdicts": VERDICTS,
        "reason": "error-rate is failing",
        "restored": ["restore canary to 0% on haproxy backend app"],
        "at": AT,
        "report_url": "https://reports.example.com/checkout/1",
    }
    data.update(fields)
    return Notification(
        channels=[AppriseChannel(name="a", url_env="A")],
        text="one line",
        service="checkout",
        notice=Notice(**data),
    )


def test_every_event_has_an_expectation() -> None:
    assert set(EXPECTED) == set(EventKind)


@pytest.mark.parametrize("kind", list(EventKind), ids=[k.value for k in EventKind])
def test_each_event_renders_with_its_details(kind: EventKind) -> None:
    message = render(notice(kind), LINK)
    assert "checkout" in message.title and "v2.4.1" in message.title
    whole = f"{message.title}\n{message.body}"
    for phrase in EXPECTED[kind]:
        assert phrase in whole, phrase
    assert "http://localhost:8233/namespaces/prod/workflows/rollout-checkout" in message.body
    assert "Report: https://reports.example.com/checkout/1" in message.body
    assert message.severity is kind.severity
    assert message.text == "one line"  # what the plan's webhook gets, as ever


EXPERIMENT = ExperimentBrief(
    control="a",
    primary="conversion",
    max_duration_s=3 * 86_400,
    variants=[
        VariantBrief(name="a", share=50, control=True),
        VariantBrief(name="b", share=50, effect="x1.2 [x1.08, x1.33]", better=True),
        VariantBrief(name="c", share=0, out="errors: rate x3 [x2.1, x4] vs allowed x1.15"),
    ],
    variant="b",
)
EXPERIMENT_EXPECTED = {
    EventKind.STARTED: ["Experiment on checkout started", "judged against a on conversion", "3d"],
    EventKind.PAUSED: ["Experiment on checkout paused", "rollout resume checkout", "put a back"],
    EventKind.GATE_FAILING: ["checkout: b taken out", "Its share went to a", "error-rate"],
    EventKind.PROMOTED: ["b rolled forward to 100% of traffic", "Gates on b at the last check"],
    EventKind.NO_WINNER: ["no winner, a keeps all traffic", "Why: error-rate is failing"],
    EventKind.ROLLED_BACK: ["rolled back: a has all traffic again", "Restored: restore canary"],
    EventKind.ABORTED: ["aborted: a has all traffic again", "Restored: restore canary"],
}


@pytest.mark.parametrize("kind", list(EXPERIMENT_EXPECTED), ids=lambda k: k.value)
def test_an_experiment_s_events_show_its_variants(kind: EventKind) -> None:
    message = render(notice(kind, experiment=EXPERIMENT, strategy="experiment"), LINK)
    assert message.title.startswith(("🧪", "⏸", "⚠️", "🎉", "🤝", "⛔", "🛑"))
    assert "Experiment on checkout" in message.title and "v2.4.1" not in message.title
    whole = f"{message.title}\n{message.body}"
    for phrase in EXPERIMENT_EXPECTED[kind]:
        assert phrase in whole, phrase
    if kind not in (EventKind.ABORTED,):
        # Each variant on its own line: its share, and its effect or why it is out.
        assert "  a: 50% (control)" in whole
        assert "  b: 50%, conversion x1.2 [x1.08, x1.33], better" in whole
        assert "  c: 0% (taken out: errors: rate x3" in whole
    assert "Report: https://reports.example.com/checkout/1" in message.body
    assert message.severity is kind.severity


def test_the_report_line_is_left_out_without_a_report() -> None:
    assert "Report:" not in render(notice(EventKind.PROMOTED, report_url=None), LINK).body


def test_the_plans_templates_win_and_include_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "promoted.j2").write_text(
        "{{ service }} is out: {{ weight }}%\nby {{ reason }}\n{% include '_footer.j2' %}"
    )
    message = render(notice(EventKind.PROMOTED, templates_dir=str(tmp_path)), LINK)
    assert message.title == "checkout is out: 50%"
    assert message.body.startswith("by error-rate is failing")
    assert "Temporal UI: http://localhost:8233/" in message.body
    # Events without a template of the plan's keep the defaults.
    other = render(notice(EventKind.STARTED, templates_dir=str(tmp_path)), LINK)
    assert other.title == "🚀 Rollout of checkout v2.4.1 started"


def test_the_workers_template_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drift.j2").write_text("DRIFT {{ service }}\n{{ reason }}")
    monkeypatch.setenv("ROLLOUT_TEMPLATE_DIR", str(tmp_path))
    assert render(notice(EventKind.DRIFT), LINK).title == "DRIFT checkout"


def test_a_broken_or_unsafe_template_falls_back_to_the_default(tmp_path: Path) -> None:
    (tmp_path / "promoted.j2").write_text("{{ service.__class__.__mro__ }}")
    (tmp_path / "drift.j2").write_text("{{ no_such_field }}")
    promoted = render(notice(EventKind.PROMOTED, templates_dir=str(tmp_path)), LINK)
    assert promoted.title == "🎉 checkout v2.4.1 promoted: 100% of traffic"
    assert "(template promoted.j2 failed:" in promoted.body
    assert "object" not in promoted.body.split("(template")[0]
    drift = render(notice(EventKind.DRIFT, templates_dir=str(tmp_path)), LINK)
    assert "'no_such_field' is undefined; the default was used" in drift.body


def test_text_stays_text() -> None:
    # Autoescape is off: the message is plain text, not HTML.
    message = render(notice(EventKind.PAUSED, reason="p95 <= 0.5 & errors > 1%"), LINK)
    assert "Reason: p95 <= 0.5 & errors > 1%" in message.body
