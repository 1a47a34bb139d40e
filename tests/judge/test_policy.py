"""The gate policy the workflow applies: streaks, limits, actions, severities, dry runs."""

from __future__ import annotations

from typing import Any

from plans import Gate, GateOutcome, Verdict, gate_from
from plans.runtime.progress import RolloutProgress
from tests.verdict_words import record_verdicts
from workflows.rollout.decisions import MAX_SHADOW_KEPT, judge_checks

PASS, FAIL, UNSURE = GateOutcome.PASS, GateOutcome.FAIL, GateOutcome.INCONCLUSIVE


def gate(name: str = "error-rate", **fields: Any) -> Gate:
    return gate_from({"name": name, "query": "q", "max": 0.05} | fields)


def verdict(outcome: GateOutcome, name: str = "error-rate", reason: str = "") -> Verdict:
    why = (
        reason
        or {
            PASS: "canary 0.2% vs stable 0.2%",
            FAIL: "canary 4.1% vs stable 0.2% (limit <= stable x1.5+0.1% = 0.4%)",
            UNSURE: "canary: 12 requests in 1m, below min_samples 200",
        }[outcome]
    )
    return Verdict(gate=name, outcome=outcome, value=0.041, threshold="<= 5%", reason=why)


def run(gates: list[Gate], outcomes: list[GateOutcome], progress: RolloutProgress) -> list[Any]:
    """The actions of each check, one check per outcome (every gate gets the same one)."""
    return [
        [
            (a.action, a.gate, a.streak)
            for a in judge_checks(progress, gates, [verdict(o, g.name) for g in gates])
        ]
        for o in outcomes
    ]


def test_failure_limit_is_consecutive_fails() -> None:
    progress = RolloutProgress()
    checks = run([gate(failure_limit=3)], [FAIL, FAIL, PASS, FAIL, FAIL, FAIL], progress)
    assert checks == [[], [], [], [], [], [("rollback", "error-rate", 3)]]
    assert progress.gates.failure_streaks == {"error-rate": 3}


def test_the_rollback_reason_quotes_the_verdict_and_the_streak() -> None:
    progress = RolloutProgress()
    judge_checks(progress, [gate(failure_limit=2)], [verdict(FAIL)])
    (action,) = judge_checks(progress, [gate(failure_limit=2)], [verdict(FAIL)])
    assert action.reason == (
        "error-rate: canary 4.1% vs stable 0.2% (limit <= stable x1.5+0.1% = 0.4%),"
        " failed 2 check(s) in a row"
    )
    assert (action.trigger, action.limit, action.severity) == ("fail", 2, "critical")


def test_inconclusive_checks_pause_by_default_and_ask_again_if_it_goes_on() -> None:
    progress = RolloutProgress()
    checks = run([gate()], [UNSURE] * 6, progress)
    assert checks == [[], [], [("pause", "error-rate", 3)], [], [], [("pause", "error-rate", 6)]]
    (action,) = judge_checks(progress, [gate(inconclusive_limit=7)], [verdict(UNSURE)])
    assert action.reason == (
        "error-rate: inconclusive 7 check(s) in a row: canary: 12 requests in 1m,"
        " below min_samples 200"
    )


def test_inconclusive_neither_hides_nor_counts_as_a_failure() -> None:
    progress = RolloutProgress()
    checks = run([gate(failure_limit=2)], [FAIL, UNSURE, FAIL], progress)
    assert checks == [[], [], [("rollback", "error-rate", 2)]]


def test_a_pass_resets_both_streaks() -> None:
    progress = RolloutProgress()
    run([gate()], [FAIL, UNSURE, UNSURE, PASS], progress)
    assert progress.gates.failure_streaks == {"error-rate": 0}
    assert progress.gates.inconclusive_streaks == {"error-rate": 0}


def test_severities_choose_the_default_actions() -> None:
    gates = [
        gate("crit"),
        gate("warn", severity="warning"),
        gate("info", severity="info"),
    ]
    progress = RolloutProgress()
    assert run(gates, [FAIL], progress) == [[("rollback", "crit", 1), ("notify", "warn", 1)]]
    progress = RolloutProgress()
    assert run(gates, [UNSURE] * 3, progress)[-1] == [("pause", "crit", 3), ("notify", "warn", 3)]


def test_explicit_actions_win_over_the_severity() -> None:
    gates = [
        gate("a", on_fail="pause"),
        gate("b", severity="info", on_fail="rollback"),
        gate("c", on_fail="ignore", on_inconclusive="rollback", inconclusive_limit=1),
    ]
    assert run(gates, [FAIL], RolloutProgress()) == [[("rollback", "b", 1), ("pause", "a", 1)]]
    assert run(gates, [UNSURE], RolloutProgress()) == [[("rollback", "c", 1)]]


def test_notify_repeats_every_limit_checks_not_every_check() -> None:
    progress = RolloutProgress()
    checks = run([gate(severity="warning", failure_limit=2)], [FAIL] * 5, progress)
    assert checks == [[], [("notify", "error-rate", 2)], [], [("notify", "error-rate", 4)], []]


def test_dry_run_gates_never_act_but_say_what_they_would_have_done() -> None:
    progress = RolloutProgress(checks=7)
    shadow = gate("shadow", dry_run=True)
    assert run([shadow], [FAIL, FAIL], progress) == [[], []]
    assert [(a.action, a.gate, a.streak, a.check) for a in progress.gates.shadow_actions] == [
        ("rollback", "shadow", 1, 7),
        ("rollback", "shadow", 2, 7),
    ]
    assert progress.gates.verdicts["shadow"].outcome is FAIL
    run([shadow], [FAIL] * (MAX_SHADOW_KEPT + 5), progress)
    assert len(progress.gates.shadow_actions) == MAX_SHADOW_KEPT


def test_a_verdict_for_an_unlisted_gate_follows_the_first_version() -> None:
    progress = RolloutProgress()
    actions = judge_checks(progress, [], [verdict(FAIL, "other"), verdict(UNSURE, "ghost")])
    assert [(a.action, a.gate) for a in actions] == [("rollback", "other")]


def test_record_verdicts_keeps_its_first_answers() -> None:
    progress = RolloutProgress()
    gates = [gate(failure_limit=2), gate("warn", severity="warning")]
    assert record_verdicts(progress, gates, [verdict(FAIL), verdict(FAIL, "warn")]) == []
    assert record_verdicts(progress, gates, [verdict(FAIL), verdict(PASS, "warn")]) == [
        "gate 'error-rate' failed 2 check(s) in a row (limit 2): canary 4.1% vs stable 0.2%"
        " (limit <= stable x1.5+0.1% = 0.4%)"
    ]
    unsure = [gate("u", on_inconclusive="rollback", inconclusive_limit=2)]
    record_verdicts(progress, unsure, [verdict(UNSURE, "u")])
    assert record_verdicts(progress, unsure, [verdict(UNSURE, "u")]) == [
        "gate 'u' was inconclusive 2 check(s) in a row (limit 2): canary: 12 requests in 1m,"
        " below min_samples 200"
    ]


def test_the_same_verdicts_give_the_same_actions() -> None:
    gates = [gate(failure_limit=2), gate("warn", severity="warning")]
    outcomes = [FAIL, UNSURE, FAIL, FAIL, PASS, FAIL]
    assert run(gates, outcomes, RolloutProgress()) == run(gates, outcomes, RolloutProgress())
