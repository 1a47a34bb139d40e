"""Alertmanager's notifications: reading them, the rules, the decisions and remembering alerts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plans import CommandKind, OperatorCommand, RolloutState, RolloutStatus
from plans.errors import PlanError
from receiver.decide import (
    BY,
    REASON_CHARS,
    Handled,
    Outcome,
    Report,
    Screened,
    command,
    judge,
    reason,
    screen,
    within,
)
from receiver.payload import Alert, MalformedNotification, parse_notification
from receiver.rules import (
    DEFAULT_RULES,
    AlertAction,
    RulesError,
    load_rules,
    parse_rules,
)

STAGE_START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def alert_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "CanaryErrors", "severity": "critical", "service": "checkout"},
        "annotations": {"summary": "canary error rate 31%"},
        "startsAt": "2026-11-22T10:01:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "1a30ba71cca2921f",
    }
    data.update(changes)
    return data


def body(*alerts: dict[str, Any], **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="CanaryErrors"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollouts",
        "groupLabels": {"alertname": "CanaryErrors"},
        "commonLabels": {"alertname": "CanaryErrors"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [alert_data()],
    }
    data.update(changes)
    return json.dumps(data).encode()


def an_alert(**changes: Any) -> Alert:
    return parse_notification(body(alert_data(**changes))).alerts[0]


def baking(**changes: Any) -> RolloutStatus:
    base = RolloutStatus(
        service="checkout",
        version="v2",
        state=RolloutState.BAKING,
        stage_index=1,
        stage_name="early",
        stage_count=3,
        canary_weight=25,
        paused=False,
        bake_total_s=600.0,
        bake_elapsed_s=60.0,
        bake_remaining_s=540.0,
        awaiting_approval=False,
        stage_started_at=STAGE_START,
    )
    return base.model_copy(update=changes)


# -- the payload -------------------------------------------------------------------------------


def test_a_notification_is_read_with_every_field() -> None:
    group = parse_notification(body(alert_data(), alert_data(status="resolved"), truncatedAlerts=3))
    assert group.version == "4" and group.receiver == "rollouts"
    assert group.truncated_alerts == 3
    assert group.external_url == "http://alertmanager:9093"
    first = group.alerts[0]
    assert first.name == "CanaryErrors"
    assert first.starts_at == datetime(2026, 11, 22, 10, 1, 0, 123000, tzinfo=UTC)
    assert first.generator_url.startswith("http://prometheus:9090/")
    assert first.key == "1a30ba71cca2921f@2026-11-22T10:01:00.123000+00:00"
    assert group.alerts[1].status == "resolved"


def test_fields_alertmanager_adds_later_are_ignored() -> None:
    group = parse_notification(body(alert_data(silenceURL="x"), orgId=1))
    assert group.alerts[0].fingerprint == "1a30ba71cca2921f"


def test_an_alert_without_a_fingerprint_is_keyed_by_its_labels() -> None:
    data = alert_data()
    del data["fingerprint"]
    one = parse_notification(body(data)).alerts[0]
    again = parse_notification(body(dict(data))).alerts[0]
    other = parse_notification(body(alert_data(labels={"alertname": "Other"}))).alerts[0]
    assert one.key == again.key and one.key != other.key


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "a JSON list, not an object"),
        (body(version="3"), 'version is "3", not "4"'),
        (json.dumps({"alerts": []}).encode(), "version is null"),
        (body(alerts="nope"), "alerts: Input should be a valid list"),
        (body(alert_data(status="pending")), "alerts.0.status"),
        (body(alert_data(startsAt="2026-11-22T10:01:00")), "alerts.0.startsAt"),
        (body(alert_data(startsAt="yesterday")), "alerts.0.startsAt"),
        (body(alert_data(labels={"severity": 3})), "alerts.0.labels.severity"),
        (body(truncatedAlerts=-1), "truncatedAlerts"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    ],
)
def test_a_malformed_body_says_what_is_wrong(raw: bytes, words: str) -> None:
    with pytest.raises(MalformedNotification) as refused:
        parse_notification(raw)
    assert words in str(refused.value)


def test_a_body_with_many_problems_names_the_first_few() -> None:
    alerts = [alert_data(status="x") for _ in range(20)]
    with pytest.raises(MalformedNotification) as refused:
        parse_notification(body(*alerts))
    assert "alerts.0.status" in str(refused.value) and "and 15 more" in str(refused.value)


# -- the rules ---------------------------------------------------------------------------------


def test_by_default_critical_alerts_roll_back_and_others_do_nothing() -> None:
    assert DEFAULT_RULES.action_for({"severity": "critical"}) is not None
    action, _ = DEFAULT_RULES.action_for({"severity": "critical", "x": "y"}) or (None, None)
    assert action == AlertAction.ROLLBACK
    assert DEFAULT_RULES.action_for({"severity": "warning"}) is None
    assert DEFAULT_RULES.action_for({}) is None


def test_the_first_matching_rule_decides() -> None:
    rules = parse_rules(
        {
            "rules": [
                {"match": {"severity": "critical", "team": "payments"}, "action": "pause"},
                {"match": {"severity": "critical"}, "action": "rollback"},
                {"match_re": {"alertname": "Canary.*"}, "action": "notify"},
            ]
        }
    )

    def action(**labels: str) -> AlertAction | None:
        found = rules.action_for(labels)
        return found[0] if found else None

    assert action(severity="critical", team="payments") == AlertAction.PAUSE
    assert action(severity="critical", team="search") == AlertAction.ROLLBACK
    assert action(severity="warning", alertname="CanaryLatency") == AlertAction.NOTIFY
    # A regex matches the whole value, as Prometheus's =~ does.
    assert action(severity="warning", alertname="OldCanaryLatency") is None


def test_a_regex_may_match_a_missing_label_as_empty() -> None:
    rules = parse_rules({"rules": [{"match_re": {"env": "|prod"}, "action": "rollback"}]})
    assert rules.action_for({}) is not None
    assert rules.action_for({"env": "staging"}) is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([{"match": {}}], "must be a mapping with a `rules:` list"),
        ({"rules": []}, "rules: List should have at least 1 item"),
        ({"rules": [{"match": {"severity": "critical"}, "action": "page"}]}, "rules.0.action"),
        ({"rules": [{"action": "rollback"}]}, "would act on every alert"),
        ({"rules": [{"match": {"1bad": "x"}, "action": "pause"}]}, "not a Prometheus label"),
        ({"rules": [{"match_re": {"a": "("}, "action": "pause"}]}, "not a regular expression"),
        ({"rules": [{"match": {"a": "b"}, "action": "pause", "when": 1}]}, "rules.0.when"),
        ({"rule": []}, "rules: Field required"),
    ],
)
def test_a_wrong_rules_file_names_the_field_and_the_fix(data: Any, words: str) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(data, "alert-rules.yaml")
    assert "alert-rules.yaml is not valid" in str(refused.value)
    assert words in str(refused.value)
    assert isinstance(refused.value, PlanError)  # the CLI exits 2, as for a bad plan


def test_rules_load_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - match: {severity: critical}\n"
        "    action: rollback\n"
        "  - match: {severity: warning}\n"
        "    match_re: {alertname: 'Canary.*'}\n"
        "    action: pause\n"
    )
    rules = load_rules(path)
    assert [rule.action for rule in rules.rules] == [AlertAction.ROLLBACK, AlertAction.PAUSE]
    assert rules.rules[1].describe() == '{severity="warning", alertname=~"Canary.*"} -> pause'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rules: [", "not valid YAML"),
        ("a: &x [1]\nrules: *x\n", "aliases (*name) are not allowed"),
        ("x" * 70_000, "larger than 65,536 bytes"),
    ],
)
def test_a_rules_file_that_cannot_be_read_says_why(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as refused:
        load_rules(path)
    assert words in str(refused.value)


def test_a_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as refused:
        load_rules(tmp_path / "nope.yaml")
    assert "cannot read" in str(refused.value) and "nope.yaml" in str(refused.value)


# -- screening an alert, offline ---------------------------------------------------------------


def screened(found: Screened | Report) -> Screened:
    assert isinstance(found, Screened), found
    return found


def skipped(found: Screened | Report | None, words: str) -> None:
    assert isinstance(found, Report), found
    assert found.outcome in (Outcome.SKIPPED, Outcome.DUPLICATE)
    assert words in found.detail


def test_a_critical_firing_alert_for_a_service_passes_the_screen() -> None:
    found = screened(screen(an_alert(), DEFAULT_RULES, "service", Handled()))
    assert found.service == "checkout" and found.action == AlertAction.ROLLBACK


def test_what_the_screen_turns_away() -> None:
    handled = Handled()
    rules = DEFAULT_RULES
    skipped(screen(an_alert(status="resolved"), rules, "service", handled), "resolved")
    no_service = an_alert(labels={"alertname": "A", "severity": "critical"})
    skipped(screen(no_service, rules, "service", handled), "no 'service' label")
    unsafe = an_alert(labels={"severity": "critical", "service": 'x"} or vector(1)'})
    skipped(screen(unsafe, rules, "service", handled), "cannot name a rollout")
    warning = an_alert(labels={"severity": "warning", "service": "checkout"})
    skipped(screen(warning, rules, "service", handled), "no rule matches")


def test_the_service_label_is_configurable() -> None:
    alert = an_alert(labels={"severity": "critical", "app": "search"})
    assert screened(screen(alert, DEFAULT_RULES, "app", Handled())).service == "search"


def test_an_alert_handled_before_is_a_duplicate_until_it_starts_again() -> None:
    handled = Handled()
    alert = an_alert()
    handled.remember(alert.key, "sent rollback")
    found = screen(alert, DEFAULT_RULES, "service", handled)
    assert isinstance(found, Report) and found.outcome == Outcome.DUPLICATE
    assert "sent rollback" in found.detail
    # The same labels firing again later are a new alert.
    later = an_alert(startsAt="2026-11-22T11:00:00Z")
    screened(screen(later, DEFAULT_RULES, "service", handled))


# -- judging it against the rollout ------------------------------------------------------------


def test_an_alert_that_started_after_the_stage_acts() -> None:
    item = screened(screen(an_alert(), DEFAULT_RULES, "service", Handled()))
    assert judge(item, baking()) is None


def test_an_alert_older_than_the_stage_does_not_act() -> None:
    item = screened(
        screen(an_alert(startsAt="2026-11-22T09:59:59Z"), DEFAULT_RULES, "service", Handled())
    )
    skipped(judge(item, baking()), "before stage 'early' did at 2026-11-22T10:00:00+00:00")
    at_the_start = screened(
        screen(an_alert(startsAt="2026-11-22T10:00:00Z"), DEFAULT_RULES, "service", Handled())
    )
    skipped(judge(at_the_start, baking()), "not about this stage")


FIRST_SHIFT = STAGE_START - timedelta(minutes=30)  # two stages before "early" began


def test_an_alert_that_started_in_an_earlier_stage_acts() -> None:
    two_stages_ago = an_alert(startsAt="2026-11-22T09:40:00Z")
    item = screened(screen(two_stages_ago, DEFAULT_RULES, "service", Handled()))
    assert judge(item, baking(), FIRST_SHIFT) is None


def test_an_alert_older_than_the_first_shift_does_not_act() -> None:
    older = an_alert(startsAt="2026-11-22T09:29:00Z")
    item = screened(screen(older, DEFAULT_RULES, "service", Handled()))
    skipped(
        judge(item, baking(), FIRST_SHIFT),
        "before the rollout first shifted traffic at 2026-11-22T09:30:00+00:00",
    )
    at_the_shift = an_alert(startsAt="2026-11-22T09:30:00Z")
    item = screened(screen(at_the_shift, DEFAULT_RULES, "service", Handled()))
    skipped(judge(item, baking(), FIRST_SHIFT), "not about this rollout")


def test_an_alert_in_another_zone_is_compared_as_the_same_instant() -> None:
    later = an_alert(startsAt="2026-11-22T11:00:01+01:00")
    item = screened(screen(later, DEFAULT_RULES, "service", Handled()))
    assert judge(item, baking()) is None


def test_no_action_on_an_ended_rollout_or_before_its_first_stage() -> None:
    item = screened(screen(an_alert(), DEFAULT_RULES, "service", Handled()))
    skipped(judge(item, baking(state=RolloutState.ROLLED_BACK)), "has ended (rolled_back)")
    skipped(judge(item, baking(stage_started_at=None)), "has not started a stage yet")


def test_the_command_is_sent_as_alertmanager_with_the_alert_as_reason() -> None:
    item = screened(screen(an_alert(), DEFAULT_RULES, "service", Handled()))
    sent = command(item)
    assert sent is not None
    assert sent.kind == CommandKind.ROLLBACK and sent.by == BY == "alertmanager"
    assert sent.reason == (
        "alert CanaryErrors: canary error rate 31% (http://prometheus:9090/graph?g0.expr=up)"
    )
    pause = Screened(item.alert, "checkout", AlertAction.PAUSE, item.rule)
    assert (command(pause) or sent).kind == CommandKind.PAUSE
    assert command(Screened(item.alert, "checkout", AlertAction.NOTIFY, item.rule)) is None


def test_a_long_summary_still_makes_a_valid_command() -> None:
    alert = an_alert(annotations={"summary": "x" * 50_000}, generatorURL="http://p/" + "y" * 5000)
    item = screened(screen(alert, DEFAULT_RULES, "service", Handled()))
    sent = command(item)
    assert sent is not None and len(sent.reason) <= 2000
    assert "50,000 characters" in sent.reason


@pytest.mark.parametrize(
    ("name", "summary", "url"),
    [
        ("N" * 300, "x" * 2_500, "http://p/" + "y" * 700),  # made a 2,149-character reason
        ("N" * 5_000, "x" * 5_000, "http://p/" + "y" * 5_000),
        ("CanaryErrors", "\u00e9" * 10_000, ""),
        ("N" * 5_000, "", "http://p/" + "y" * 5_000),
    ],
)
def test_the_reason_always_fits_the_commands_cap(name: str, summary: str, url: str) -> None:
    labels = {"alertname": name, "severity": "critical", "service": "checkout"}
    alert = an_alert(labels=labels, annotations={"summary": summary}, generatorURL=url)
    text = reason(alert)
    assert len(text) <= REASON_CHARS
    assert text.startswith("alert NNN" if name.startswith("N") else "alert CanaryErrors")
    sent = command(screened(screen(alert, DEFAULT_RULES, "service", Handled())))
    assert sent is not None and sent.reason == text


def test_the_reason_cap_is_the_commands() -> None:
    [limit] = [m.max_length for m in OperatorCommand.model_fields["reason"].metadata]
    assert limit == REASON_CHARS


def test_within_cuts_to_the_limit_and_says_how_long_the_text_was() -> None:
    assert within("short", 10) == "short"
    cut = within("z" * 3_000, 100)
    assert len(cut) == 100 and cut.endswith("\u2026 (3,000 characters)")
    assert within("z" * 3_000, 5) == "zzzzz"
    assert within("z" * 3_000, 0) == ""


def test_the_reason_falls_back_to_the_description_then_to_the_name() -> None:
    assert reason(an_alert(annotations={"description": "slow"})).startswith(
        "alert CanaryErrors: slow"
    )
    assert reason(an_alert(annotations={}, generatorURL="")) == "alert CanaryErrors"


# -- remembering handled alerts ----------------------------------------------------------------


def test_handled_alerts_are_remembered_up_to_a_bound_oldest_forgotten_first() -> None:
    handled = Handled(remembered=3)
    for key in "abcd":
        handled.remember(key, f"sent {key}")
    assert len(handled) == 3
    assert handled.get("a") is None and handled.get("d") == "sent d"


async def test_one_service_at_a_time_and_no_lock_left_behind() -> None:
    handled = Handled()
    order: list[str] = []

    async def take(name: str, hold: asyncio.Event | None) -> None:
        async with handled.one_at_a_time("checkout"):
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    release = asyncio.Event()
    first = asyncio.create_task(take("first", release))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("second", None))
    await asyncio.sleep(0)
    assert order == ["first in"]
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=5)
    assert order == ["first in", "first out", "second in", "second out"]
    assert handled._locks == {} and handled._waiting == {}


def test_the_stage_start_is_optional_in_a_status_from_an_older_worker() -> None:
    data = json.loads(baking().model_dump_json())
    del data["stage_started_at"]
    assert RolloutStatus.model_validate(data).stage_started_at is None
    later = baking(stage_started_at=STAGE_START + timedelta(minutes=1))
    assert RolloutStatus.model_validate_json(later.model_dump_json()) == later


def test_a_rules_file_not_in_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"rules:\n  - match: {alertname: \xff}\n")
    with pytest.raises(RulesError) as refused:
        load_rules(path)
    assert "as UTF-8 text (byte 30)" in str(refused.value)
