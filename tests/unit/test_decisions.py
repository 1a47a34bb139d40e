"""The workflow's pure decisions, with exact numbers and fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plans import (
    CommandKind,
    GateOutcome,
    OperatorCommand,
    Plan,
    RolloutState,
    Verdict,
    parse_plan,
)
from plans.runtime.progress import BakeClock, GateRecord, RolloutProgress
from tests.verdict_words import record_verdicts
from workflows.rollout import decisions

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COMMANDS = [
    CommandKind.PAUSE,
    CommandKind.RESUME,
    CommandKind.APPROVE,
    CommandKind.PROMOTE,
    CommandKind.ROLLBACK,
]
ROLLOUT_STATES = [s for s in RolloutState if not s.final and s != RolloutState.ROLLING_BACK]


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def make_plan(**changes: Any) -> Plan:
    """Three stages: 'ten' (10m bake), 'half' (10m bake, needs approval), 'full' (errors only)."""
    data: dict[str, Any] = {
        "service": "shop",
        "stable": "shop-v1",
        "canary": "shop-v2",
        "router": {"kind": "haproxy", "runtime_api": "/run/haproxy.sock", "backend": "shop"},
        "metrics": {"kind": "prometheus", "url": "http://prometheus:9090"},
        "gates": [
            {"name": "errors", "query": "e", "max": 0.05, "failure_limit": 3},
            {"name": "latency", "query": "l", "max": 0.25},
        ],
        "stages": [
            {"name": "ten", "weight": 10, "bake": "10m"},
            {"name": "half", "weight": 50, "bake": "10m", "approval": True},
            {"name": "full", "weight": 100, "bake": "5m", "gates": ["errors"]},
        ],
    }
    data.update(changes)
    return parse_plan(data)


PLAN = make_plan()
ERRORS, LATENCY = PLAN.gates


def verdict(gate: str, outcome: GateOutcome, value: float | None = None, **extra: Any) -> Verdict:
    return Verdict(gate=gate, outcome=outcome, value=value, threshold="<= 0.05", **extra)


def passing(*gates: str) -> dict[str, Verdict]:
    return {g: verdict(g, GateOutcome.PASS, 0.01) for g in gates}


def baking(
    stage: int = 0,
    elapsed: float = 0.0,
    running_since: datetime | None = T0,
    checks: int = 0,
    verdicts: dict[str, Verdict] | None = None,
    **changes: Any,
) -> RolloutProgress:
    """Progress on a stage whose traffic is shifted, clock running since T0."""
    fields: dict[str, Any] = {
        "state": RolloutState.BAKING,
        "stage_index": stage,
        "shifted_stage": stage,
        "canary_weight": PLAN.stages[stage].weight,
        "clock": BakeClock(elapsed_s=elapsed, running_since=running_since, checks=checks),
        "gates": GateRecord(verdicts=verdicts or {}),
    }
    fields.update(changes)
    return RolloutProgress(**fields)


def baked_and_green(stage: int) -> RolloutProgress:
    """Baked at T0 and every gate passed one check."""
    return baking(
        stage,
        elapsed=PLAN.stages[stage].bake.total_seconds(),
        checks=1,
        verdicts=passing("errors", "latency"),
    )


def cmd(kind: CommandKind, by: str = "ana", reason: str = "") -> OperatorCommand:
    return OperatorCommand(kind=kind, by=by, reason=reason)


# -- the bake clock -------------------------------------------------------------------------


def test_bake_elapsed_adds_running_clock() -> None:
    progress = baking(elapsed=120.0)
    assert decisions.bake_elapsed(progress, at(minutes=3)) == 300.0
    assert decisions.bake_elapsed(progress, at(seconds=0.5)) == 120.5


def test_bake_elapsed_with_clock_stopped() -> None:
    progress = baking(elapsed=120.0, running_since=None)
    assert decisions.bake_elapsed(progress, at(hours=5)) == 120.0


def test_bake_elapsed_never_runs_backwards() -> None:
    progress = baking(elapsed=30.0, running_since=at(minutes=1))
    assert decisions.bake_elapsed(progress, T0) == 30.0


def test_bake_remaining() -> None:
    progress = baking(elapsed=120.0)
    assert decisions.bake_remaining(PLAN, progress, at(minutes=3)) == 300.0
    assert decisions.bake_remaining(PLAN, progress, at(minutes=8)) == 0.0
    assert decisions.bake_remaining(PLAN, progress, at(hours=1)) == 0.0
    assert decisions.baked(PLAN, progress, at(minutes=7, seconds=59)) is False
    assert decisions.baked(PLAN, progress, at(minutes=8)) is True


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (RolloutState.PROMOTED, "rollout was promoted"),
        (RolloutState.ROLLED_BACK, "rollout was rolled back"),
        (RolloutState.ABORTED, "rollout was aborted"),
        (RolloutState.ROLLING_BACK, "rollout is rolling back"),
    ],
)
@pytest.mark.parametrize("kind", COMMANDS)
def test_commands_after_the_end_are_refused(
    kind: CommandKind, state: RolloutState, words: str
) -> None:
    progress = baked_and_green(1)
    progress.state = state
    assert decisions.refusal(PLAN, progress, cmd(kind), T0) == f"{kind.value}: {words}"


@pytest.mark.parametrize("kind", COMMANDS)
def test_commands_while_a_rollback_is_requested_are_refused(kind: CommandKind) -> None:
    progress = baked_and_green(1)
    progress.rollback_requested = True
    expected = f"{kind.value}: rollout is rolling back"
    assert decisions.refusal(PLAN, progress, cmd(kind), T0) == expected


@pytest.mark.parametrize("state", ROLLOUT_STATES)
def test_pause_when_not_paused_is_taken(state: RolloutState) -> None:
    progress = baking(state=state)
    assert decisions.refusal(PLAN, progress, cmd(CommandKind.PAUSE), T0) == ""


def test_pause_when_paused_is_refused() -> None:
    progress = baking(state=RolloutState.PAUSED, paused=True, running_since=None)
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.PAUSE), T0)
    assert refusal == "pause: rollout is already paused"


def test_resume_when_not_paused_is_refused() -> None:
    refusal = decisions.refusal(PLAN, baking(), cmd(CommandKind.RESUME), T0)
    assert refusal == "resume: rollout is not paused"


def test_resume_when_paused_is_taken() -> None:
    progress = baking(state=RolloutState.PAUSED, paused=True, running_since=None)
    assert decisions.refusal(PLAN, progress, cmd(CommandKind.RESUME), T0) == ""


def test_promote_is_taken_once() -> None:
    progress = baking()
    assert decisions.refusal(PLAN, progress, cmd(CommandKind.PROMOTE), T0) == ""
    progress.promote_requested = True
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.PROMOTE), T0)
    assert refusal == "promote: rollout is already being promoted"


@pytest.mark.parametrize("paused", [False, True])
def test_rollback_is_taken_while_running_or_paused(paused: bool) -> None:
    progress = baking(paused=paused)
    assert decisions.refusal(PLAN, progress, cmd(CommandKind.ROLLBACK), T0) == ""


@pytest.mark.parametrize("stage", [0, 2])
def test_approve_on_a_stage_without_approval(stage: int) -> None:
    name = PLAN.stages[stage].name
    refusal = decisions.refusal(PLAN, baked_and_green(stage), cmd(CommandKind.APPROVE), T0)
    assert refusal == f"approve: stage {name!r} does not ask for approval"


def test_approve_while_still_baking() -> None:
    progress = baking(1, elapsed=60.0, checks=1, verdicts=passing("errors", "latency"))
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), at(minutes=2))
    assert refusal == "approve: stage 'half' is still baking, 7m left"


def test_approve_while_paused_counts_the_stopped_clock() -> None:
    progress = baking(1, elapsed=150.0, paused=True, running_since=None)
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), at(hours=2))
    assert refusal == "approve: stage 'half' is still baking, 7m30s left"


def test_approve_before_any_check() -> None:
    progress = baking(1, elapsed=600.0)
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), T0)
    assert refusal == "approve: stage 'half' has gates that have not passed yet"


@pytest.mark.parametrize(
    "outcome", [GateOutcome.FAIL, GateOutcome.INCONCLUSIVE], ids=["failing", "inconclusive"]
)
def test_approve_with_a_gate_not_passing(outcome: GateOutcome) -> None:
    progress = baked_and_green(1)
    progress.gates.verdicts["latency"] = verdict("latency", outcome, 0.9)
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), T0)
    assert refusal == "approve: stage 'half' has gates that have not passed yet"


def test_approve_when_baked_and_green() -> None:
    progress = baked_and_green(1)
    progress.state = RolloutState.AWAITING_APPROVAL
    assert decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), T0) == ""


def test_approve_twice() -> None:
    progress = baked_and_green(1)
    progress.approved_stage = 1
    refusal = decisions.refusal(PLAN, progress, cmd(CommandKind.APPROVE), T0)
    assert refusal == "approve: stage 'half' is already approved"


def test_approval_of_an_earlier_stage_does_not_carry_over() -> None:
    plan = make_plan(
        stages=[
            {"name": "a", "weight": 10, "bake": "1m", "approval": True},
            {"name": "b", "weight": 100, "bake": "1m", "approval": True},
        ]
    )
    progress = RolloutProgress(
        state=RolloutState.AWAITING_APPROVAL,
        stage_index=1,
        shifted_stage=1,
        clock=BakeClock(elapsed_s=60.0, checks=1),
        approved_stage=0,
        gates=GateRecord(verdicts=passing("errors", "latency")),
    )
    assert decisions.refusal(plan, progress, cmd(CommandKind.APPROVE), T0) == ""


@pytest.mark.parametrize("kind", COMMANDS)
def test_commands_during_the_final_shift_do_not_crash(kind: CommandKind) -> None:
    plan = make_plan(stages=[{"name": "a", "weight": 10}, {"name": "b", "weight": 50}])
    progress = RolloutProgress(
        state=RolloutState.SHIFTING, stage_index=2, shifted_stage=1, canary_weight=50
    )
    assert isinstance(decisions.refusal(plan, progress, cmd(kind), T0), str)


# -- applying commands ------------------------------------------------------------------------


def test_pause_stops_the_clock_and_keeps_elapsed() -> None:
    progress = baking(elapsed=60.0)
    decisions.apply_command(progress, cmd(CommandKind.PAUSE), at(minutes=2))
    assert progress.paused is True
    assert progress.clock.running_since is None
    assert progress.clock.elapsed_s == 180.0
    assert decisions.bake_elapsed(progress, at(hours=3)) == 180.0
    assert decisions.bake_remaining(PLAN, progress, at(hours=3)) == 420.0


def test_pause_before_the_shift_keeps_the_clock_stopped() -> None:
    progress = RolloutProgress(state=RolloutState.SHIFTING, stage_index=1, shifted_stage=0)
    decisions.apply_command(progress, cmd(CommandKind.PAUSE), at(minutes=5))
    assert progress.paused is True
    assert progress.clock.elapsed_s == 0.0
    assert progress.clock.running_since is None


def test_resume_restarts_the_clock_of_a_shifted_stage() -> None:
    progress = baking(elapsed=60.0)
    decisions.apply_command(progress, cmd(CommandKind.PAUSE), at(minutes=2))
    decisions.apply_command(progress, cmd(CommandKind.RESUME), at(minutes=30))
    assert progress.paused is False
    assert progress.clock.running_since == at(minutes=30)
    assert decisions.bake_elapsed(progress, at(minutes=31)) == 240.0


def test_resume_before_the_shift_leaves_the_clock_stopped() -> None:
    progress = RolloutProgress(
        state=RolloutState.PAUSED, stage_index=1, shifted_stage=0, paused=True
    )
    decisions.apply_command(progress, cmd(CommandKind.RESUME), at(minutes=30))
    assert progress.paused is False
    assert progress.clock.running_since is None
    assert decisions.bake_elapsed(progress, at(hours=1)) == 0.0


def test_approve_marks_the_current_stage() -> None:
    progress = baked_and_green(1)
    decisions.apply_command(progress, cmd(CommandKind.APPROVE), T0)
    assert progress.approved_stage == 1


def test_promote_requests_promotion() -> None:
    progress = baking()
    decisions.apply_command(progress, cmd(CommandKind.PROMOTE), T0)
    assert progress.promote_requested is True
    assert progress.rollback_requested is False


@pytest.mark.parametrize(
    ("by", "reason", "expected"),
    [
        ("ana", "p99 doubled", "rollback requested by ana: p99 doubled"),
        ("ana", "", "rollback requested by ana"),
        ("", "p99 doubled", "rollback requested: p99 doubled"),
        ("", "", "rollback requested"),
    ],
)
def test_rollback_records_who_and_why(by: str, reason: str, expected: str) -> None:
    progress = baking()
    decisions.apply_command(progress, cmd(CommandKind.ROLLBACK, by=by, reason=reason), T0)
    assert progress.rollback_requested is True
    assert progress.reason == expected


def test_an_operator_without_a_name_is_unknown() -> None:
    progress = baking()
    decisions.apply_command(progress, OperatorCommand(kind=CommandKind.ROLLBACK), T0)
    assert progress.reason == "rollback requested by unknown"


# -- verdicts and failure streaks ---------------------------------------------------------------


def test_fails_extend_the_streak_until_the_limit() -> None:
    progress = baking()
    fail = verdict("errors", GateOutcome.FAIL, 0.12)
    assert record_verdicts(progress, PLAN.gates, [fail]) == []
    assert record_verdicts(progress, PLAN.gates, [fail]) == []
    assert progress.gates.failure_streaks == {"errors": 2}
    assert record_verdicts(progress, PLAN.gates, [fail]) == [
        "gate 'errors' failed 3 check(s) in a row (limit 3): 0.12, wants <= 0.05"
    ]
    assert progress.gates.failure_streaks == {"errors": 3}


def test_a_pass_resets_the_streak() -> None:
    progress = baking()
    fail = verdict("errors", GateOutcome.FAIL, 0.12)
    record_verdicts(progress, PLAN.gates, [fail, fail])
    record_verdicts(progress, PLAN.gates, [verdict("errors", GateOutcome.PASS, 0.01)])
    assert progress.gates.failure_streaks == {"errors": 0}
    assert record_verdicts(progress, PLAN.gates, [fail, fail]) == []
    assert progress.gates.failure_streaks == {"errors": 2}


def test_inconclusive_neither_resets_nor_extends() -> None:
    progress = baking()
    fail = verdict("errors", GateOutcome.FAIL, 0.2)
    unsure = verdict("errors", GateOutcome.INCONCLUSIVE, reason="no data")
    record_verdicts(progress, PLAN.gates, [fail, fail])
    for _ in range(5):
        assert record_verdicts(progress, PLAN.gates, [unsure]) == []
    assert progress.gates.failure_streaks == {"errors": 2}
    assert progress.gates.verdicts["errors"] == unsure
    [reason] = record_verdicts(progress, PLAN.gates, [fail])
    assert reason == "gate 'errors' failed 3 check(s) in a row (limit 3): 0.2, wants <= 0.05"


def test_inconclusive_alone_starts_no_streak() -> None:
    progress = baking()
    unsure = verdict("latency", GateOutcome.INCONCLUSIVE)
    assert record_verdicts(progress, PLAN.gates, [unsure]) == []
    assert progress.gates.failure_streaks == {}


def test_a_limit_of_one_trips_on_the_first_fail() -> None:
    progress = baking()
    fail = verdict("latency", GateOutcome.FAIL, 0.123456789)
    assert record_verdicts(progress, PLAN.gates, [fail]) == [
        "gate 'latency' failed 1 check(s) in a row (limit 1): 0.123457, wants <= 0.05"
    ]


def test_a_verdict_reason_is_the_detail() -> None:
    progress = baking()
    fail = verdict("latency", GateOutcome.FAIL, reason="the canary answers nothing")
    assert record_verdicts(progress, PLAN.gates, [fail]) == [
        "gate 'latency' failed 1 check(s) in a row (limit 1): the canary answers nothing"
    ]


def test_a_fail_without_a_value() -> None:
    progress = baking()
    [reason] = record_verdicts(progress, PLAN.gates, [verdict("latency", GateOutcome.FAIL)])
    assert reason == "gate 'latency' failed 1 check(s) in a row (limit 1): no value, wants <= 0.05"


def test_a_gate_missing_from_the_list_has_a_limit_of_one() -> None:
    progress = baking()
    [reason] = record_verdicts(progress, [ERRORS], [verdict("other", GateOutcome.FAIL, 1.0)])
    assert reason == "gate 'other' failed 1 check(s) in a row (limit 1): 1, wants <= 0.05"


def test_every_gate_at_its_limit_is_reported() -> None:
    progress = baking(gates=GateRecord(failure_streaks={"errors": 2}))
    reasons = record_verdicts(
        progress,
        PLAN.gates,
        [verdict("errors", GateOutcome.FAIL, 0.5), verdict("latency", GateOutcome.FAIL, 0.3)],
    )
    assert reasons == [
        "gate 'errors' failed 3 check(s) in a row (limit 3): 0.5, wants <= 0.05",
        "gate 'latency' failed 1 check(s) in a row (limit 1): 0.3, wants <= 0.05",
    ]


def test_the_latest_verdict_is_kept() -> None:
    progress = baking()
    first = verdict("errors", GateOutcome.FAIL, 0.2)
    second = verdict("errors", GateOutcome.PASS, 0.01)
    record_verdicts(progress, PLAN.gates, [first])
    record_verdicts(progress, PLAN.gates, [second])
    assert progress.gates.verdicts == {"errors": second}


# -- gates, stage completion, approval -----------------------------------------------------------


def test_gates_pass_needs_a_check_in_this_stage() -> None:
    progress = baking(1, verdicts=passing("errors", "latency"), checks=0)
    assert decisions.gates_pass(PLAN, progress, PLAN.stages[1]) is False
    progress.clock.checks = 1
    assert decisions.gates_pass(PLAN, progress, PLAN.stages[1]) is True


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        (None, False),
        (GateOutcome.FAIL, False),
        (GateOutcome.INCONCLUSIVE, False),
        (GateOutcome.PASS, True),
    ],
)
def test_gates_pass_needs_every_gate_of_the_stage(
    latency: GateOutcome | None, expected: bool
) -> None:
    progress = baking(1, checks=2, verdicts=passing("errors"))
    if latency is not None:
        progress.gates.verdicts["latency"] = verdict("latency", latency, 0.1)
    assert decisions.gates_pass(PLAN, progress, PLAN.stages[1]) is expected


def test_gates_pass_looks_only_at_the_stage_gates() -> None:
    progress = baking(2, checks=1, verdicts=passing("errors"))
    progress.gates.verdicts["latency"] = verdict("latency", GateOutcome.FAIL, 0.9)
    assert decisions.gates_pass(PLAN, progress, PLAN.stages[2]) is True


def test_a_stage_without_gates_passes_without_checks() -> None:
    plan = make_plan(gates=[], stages=[{"name": "ten", "weight": 10}])
    assert decisions.gates_pass(plan, baking(), plan.stages[0]) is True
    plan = make_plan(stages=[{"name": "dark", "weight": 0, "gates": []}])
    assert decisions.gates_pass(plan, baking(), plan.stages[0]) is True


def test_stage_complete_when_baked_and_green() -> None:
    progress = baked_and_green(0)
    assert decisions.stage_complete(PLAN, progress, T0) is True


def test_stage_not_complete_while_baking() -> None:
    progress = baking(0, elapsed=0.0, checks=3, verdicts=passing("errors", "latency"))
    assert decisions.stage_complete(PLAN, progress, at(minutes=9, seconds=59)) is False
    assert decisions.stage_complete(PLAN, progress, at(minutes=10)) is True


def test_stage_not_complete_while_paused() -> None:
    progress = baked_and_green(0)
    progress.paused = True
    progress.clock.running_since = None
    assert decisions.stage_complete(PLAN, progress, at(hours=1)) is False


def test_stage_not_complete_with_a_failing_gate() -> None:
    progress = baked_and_green(0)
    progress.gates.verdicts["errors"] = verdict("errors", GateOutcome.FAIL, 0.3)
    assert decisions.stage_complete(PLAN, progress, T0) is False


def test_stage_with_approval_completes_once_approved() -> None:
    progress = baked_and_green(1)
    assert decisions.awaiting_approval(PLAN, progress, T0) is True
    assert decisions.stage_complete(PLAN, progress, T0) is False
    decisions.apply_command(progress, cmd(CommandKind.APPROVE), T0)
    assert decisions.awaiting_approval(PLAN, progress, T0) is False
    assert decisions.stage_complete(PLAN, progress, T0) is True


def test_not_awaiting_approval_before_baked_and_green() -> None:
    still_baking = baking(1, elapsed=0.0, checks=1, verdicts=passing("errors", "latency"))
    assert decisions.awaiting_approval(PLAN, still_baking, at(minutes=5)) is False
    red = baked_and_green(1)
    red.gates.verdicts["errors"] = verdict("errors", GateOutcome.FAIL, 0.3)
    assert decisions.awaiting_approval(PLAN, red, T0) is False


def test_stage_without_approval_never_awaits_it() -> None:
    assert decisions.awaiting_approval(PLAN, baked_and_green(0), T0) is False


def test_describe_stage() -> None:
    assert decisions.describe_stage(PLAN, 1) == "stage 2/3 'half' (50%)"


# -- time nobody watched -----------------------------------------------------------------------


def test_a_check_on_time_or_a_little_late_takes_nothing_back() -> None:
    stage = make_plan().stages[0]  # checks every minute by default
    every = stage.check_every.total_seconds()
    assert decisions.check_grace(stage) == timedelta(seconds=30)
    for late in (0.0, 10.0, 30.0):
        now = at(seconds=every + late)
        assert decisions.unobserved_excess(stage, T0, T0, now) == timedelta(0)
        assert not decisions.unobserved(stage, T0, now)


def test_a_long_gap_takes_back_what_lies_beyond_interval_and_grace() -> None:
    stage = make_plan().stages[0]
    now = at(minutes=10)  # nine minutes late
    assert decisions.unobserved(stage, T0, now)
    assert decisions.unobserved_excess(stage, T0, T0, now) == timedelta(minutes=8, seconds=30)


def test_the_grace_is_at_least_five_seconds() -> None:
    plan = make_plan(stages=[{"name": "s", "weight": 10, "bake": "1m", "check_every": "2s"}])
    stage = plan.stages[0]
    assert decisions.check_grace(stage) == timedelta(seconds=5)
    assert decisions.unobserved_excess(stage, T0, T0, at(seconds=7)) == timedelta(0)
    assert decisions.unobserved_excess(stage, T0, T0, at(seconds=19)) == timedelta(seconds=12)


def test_only_time_the_bake_clock_ran_is_taken_back() -> None:
    stage = make_plan().stages[0]
    # Paused all along: nothing was counted, so nothing is taken back.
    assert decisions.unobserved_excess(stage, T0, None, at(minutes=30)) == timedelta(0)
    # Resumed two minutes before the late check: at most those two minutes go.
    resumed = at(minutes=28)
    assert decisions.unobserved_excess(stage, T0, resumed, at(minutes=30)) == timedelta(minutes=2)
    # Never checked yet: no gap to speak of.
    assert decisions.unobserved_excess(stage, None, T0, at(minutes=30)) == timedelta(0)
    assert not decisions.unobserved(stage, None, at(minutes=30))


def test_splits_that_route_alike_are_not_drift() -> None:
    from plans import TrafficSplit

    ten = TrafficSplit.canary_percent(10)
    assert ten.routes_like(TrafficSplit(stable_weight=180, canary_weight=20))
    assert not ten.routes_like(TrafficSplit.canary_percent(0))
    assert not ten.routes_like(TrafficSplit(stable_weight=0, canary_weight=0))
    assert TrafficSplit(stable_weight=0, canary_weight=0).routes_like(
        TrafficSplit(stable_weight=0, canary_weight=0)
    )
