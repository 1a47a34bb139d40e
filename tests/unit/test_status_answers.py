"""What `rollout status` and the commands say: the bake clock read now, endings in words."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, TerminatedError

from client import operations, reading
from client.operations import CommandRefused, Poller
from plans import CommandKind, OperatorCommand, RolloutResult, RolloutState, RolloutStatus

AS_OF = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def baking(**changes: Any) -> RolloutStatus:
    base = RolloutStatus(
        service="checkout",
        version="v2",
        state=RolloutState.BAKING,
        stage_index=0,
        stage_name="canary",
        stage_count=2,
        canary_weight=5,
        paused=False,
        bake_total_s=180.0,
        bake_elapsed_s=140.1,
        bake_remaining_s=39.9,
        awaiting_approval=False,
        as_of=AS_OF,
        bake_clock_running=True,
    )
    return base.model_copy(update=changes)


# -- the bake clock at the moment of asking ----------------------------------------------------


def test_a_running_clock_goes_on_from_the_workflows_last_task() -> None:
    now = AS_OF + timedelta(seconds=5)
    status = baking().at(now)
    assert status.bake_elapsed_s == pytest.approx(145.1)
    assert status.bake_remaining_s == pytest.approx(34.9)
    assert status.as_of == now


def test_a_running_clock_stops_at_the_bake_length() -> None:
    status = baking().at(AS_OF + timedelta(minutes=5))
    assert status.bake_elapsed_s == 180.0 and status.bake_remaining_s == 0.0


def test_a_stopped_clock_stays_where_it_stopped() -> None:
    paused = baking(paused=True, state=RolloutState.PAUSED, bake_clock_running=False)
    status = paused.at(AS_OF + timedelta(minutes=1))
    assert status.bake_elapsed_s == 140.1 and status.bake_remaining_s == pytest.approx(39.9)


def test_a_clock_past_its_bake_is_not_wound_back() -> None:
    # Waiting for approval after the bake: elapsed may already be past the bake's length.
    done = baking(state=RolloutState.AWAITING_APPROVAL, bake_elapsed_s=200.0, bake_remaining_s=0)
    status = done.at(AS_OF + timedelta(seconds=30))
    assert status.bake_elapsed_s == 200.0 and status.bake_remaining_s == 0.0


def test_a_client_clock_behind_the_servers_adds_nothing() -> None:
    status = baking().at(AS_OF - timedelta(seconds=3))
    assert status.bake_elapsed_s == 140.1 and status.as_of == AS_OF


def test_an_answer_without_as_of_is_left_as_it_is() -> None:
    older = baking(as_of=None)
    assert older.at(AS_OF + timedelta(seconds=30)) is older


def test_an_older_answer_without_the_new_fields_still_reads() -> None:
    data = baking().model_dump(mode="json")
    del data["as_of"], data["bake_clock_running"]
    status = RolloutStatus.model_validate(data)
    assert status.as_of is None and status.bake_clock_running is False


# -- whether a worker polls --------------------------------------------------------------------


def test_a_poll_within_a_long_poll_counts_as_a_live_worker() -> None:
    now = AS_OF
    fresh = Poller(identity="1@host", last_access=now - timedelta(seconds=50))
    stale = Poller(identity="2@host", last_access=now - timedelta(minutes=3))
    assert operations.worker_polls([stale, fresh], now)
    assert not operations.worker_polls([stale], now)
    assert not operations.worker_polls([], now)
    assert not operations.worker_polls([Poller(identity="3@host")], now)


# -- endings in words --------------------------------------------------------------------------


class FakeHandle:
    """A workflow handle whose run has ended as given; no server behind it."""

    def __init__(self, status: WorkflowExecutionStatus, outcome: object) -> None:
        self.status = status
        self.outcome = outcome
        self.updates = 0

    async def describe(self, **_: object) -> SimpleNamespace:
        return SimpleNamespace(status=self.status)

    async def result(self, **_: object) -> object:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    async def execute_update(self, *_: object, **__: object) -> object:
        self.updates += 1
        raise AssertionError("no update is sent to a run that has ended")


class FakeClient:
    def __init__(self, handle: FakeHandle) -> None:
        self.handle = handle

    def get_workflow_handle(self, workflow_id: str, **_: object) -> FakeHandle:
        assert workflow_id == "rollout-checkout"
        return self.handle


def failed(cause: BaseException) -> WorkflowFailureError:
    return WorkflowFailureError(cause=cause)


ROLLED_BACK = failed(
    ApplicationError("rolled back: gate 'error-rate' failed 3 check(s) in a row", type="RolledBack")
)


@pytest.mark.parametrize(
    ("status", "outcome", "expected", "state"),
    [
        (
            WorkflowExecutionStatus.FAILED,
            ROLLED_BACK,
            "rolled back: gate 'error-rate' failed 3 check(s) in a row",
            RolloutState.ROLLED_BACK,
        ),
        (
            WorkflowExecutionStatus.FAILED,
            failed(ApplicationError("boom", type="ValueError")),
            "failed: boom",
            None,
        ),
        (
            WorkflowExecutionStatus.COMPLETED,
            RolloutResult(
                service="checkout",
                state=RolloutState.PROMOTED,
                reason="all stages passed",
                canary_weight=100,
                stage_name="full",
            ),
            "promoted: all stages passed",
            RolloutState.PROMOTED,
        ),
        (
            WorkflowExecutionStatus.COMPLETED,
            RolloutResult(
                service="checkout",
                state=RolloutState.ABORTED,
                reason="release freeze",
                canary_weight=0,
                stage_name="canary",
            ),
            "aborted: release freeze",
            RolloutState.ABORTED,
        ),
        (WorkflowExecutionStatus.CANCELED, None, "cancelled", None),
        (
            WorkflowExecutionStatus.TERMINATED,
            failed(TerminatedError("stuck")),
            "terminated, so no rollback ran: stuck",
            None,
        ),
    ],
)
async def test_how_a_run_ended_in_words(
    status: WorkflowExecutionStatus, outcome: object, expected: str, state: RolloutState | None
) -> None:
    ending = await operations.ended_how(FakeHandle(status, outcome), status)  # type: ignore[arg-type]
    assert ending == (state, expected)


async def test_approving_a_rolled_back_run_says_it_was_rolled_back() -> None:
    handle = FakeHandle(WorkflowExecutionStatus.FAILED, ROLLED_BACK)
    command = OperatorCommand(kind=CommandKind.APPROVE, by="ana")
    with pytest.raises(CommandRefused) as refused:
        await operations.send_command(FakeClient(handle), "checkout", command)  # type: ignore[arg-type]
    assert str(refused.value) == (
        "approve: rollout of checkout has ended"
        " (rolled back: gate 'error-rate' failed 3 check(s) in a row)"
    )
    assert "failed)" not in str(refused.value) and handle.updates == 0


async def test_the_ending_of_a_closed_run_is_named() -> None:
    handle = FakeHandle(WorkflowExecutionStatus.FAILED, ROLLED_BACK)
    ending = await operations.ended_how(handle, WorkflowExecutionStatus.FAILED)  # type: ignore[arg-type]
    assert ending.state == RolloutState.ROLLED_BACK
    assert ending.text.startswith("rolled back: gate 'error-rate'")


# -- history events in words -------------------------------------------------------------------


def test_events_read_as_their_summaries() -> None:
    started = HistoryEvent(event_id=7, event_type=EventType.EVENT_TYPE_TIMER_STARTED)
    started.timer_started_event_attributes.timer_id = "3"
    started.timer_started_event_attributes.start_to_fire_timeout.FromSeconds(300)
    fired = HistoryEvent(event_id=9, event_type=EventType.EVENT_TYPE_TIMER_FIRED)
    fired.timer_fired_event_attributes.timer_id = "3"
    completed = HistoryEvent(event_id=12, event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    completed.activity_task_completed_event_attributes.scheduled_event_id = 10
    summaries = {7: "next check of stage 'early'", 10: "shift canary to 25% for stage 'early'"}
    timers = {"3": summaries[7]}
    text = operations.event_text
    assert text(started, summaries, timers) == "next check of stage 'early', fires in 5m"
    assert text(fired, summaries, timers) == "next check of stage 'early'"
    assert text(completed, summaries, timers) == "shift canary to 25% for stage 'early'"


class _SlowAnswer:
    """A workflow handle whose status query answers after ``delay_s``, as a busy worker does."""

    def __init__(self, status: WorkflowExecutionStatus, delay_s: float) -> None:
        self.status, self.delay_s, self.bounds = status, delay_s, []

    async def describe(self, rpc_timeout: timedelta) -> Any:
        return SimpleNamespace(status=self.status, task_queue="rollouts")

    async def query(self, _query: Any, rpc_timeout: timedelta, **_options: Any) -> RolloutStatus:
        self.bounds.append(rpc_timeout)
        await asyncio.sleep(self.delay_s)
        return baking(state=RolloutState.ROLLED_BACK, bake_clock_running=False)


@pytest.mark.parametrize(
    ("status", "waited", "delay_s"),
    [
        (WorkflowExecutionStatus.RUNNING, reading.QUERY_TIMEOUT, 0.01),
        # Slower than a running run's 1.5 s, as a replay on a busy worker is: still answered.
        (WorkflowExecutionStatus.FAILED, reading.ENDED_QUERY_TIMEOUT, 2.0),
    ],
)
async def test_an_ended_run_gets_longer_to_answer_than_a_running_one(
    monkeypatch: pytest.MonkeyPatch,
    status: WorkflowExecutionStatus,
    waited: timedelta,
    delay_s: float,
) -> None:
    handle = _SlowAnswer(status, delay_s)
    client = SimpleNamespace(get_workflow_handle=lambda _id: handle)
    alive = [Poller(identity="worker@host", last_access=datetime.now(UTC))]

    async def pollers(_client: Any, _queue: str) -> list[Poller]:
        return alive

    monkeypatch.setattr(reading, "task_queue_pollers", pollers)
    answer = await reading.read_status(client, "checkout")  # type: ignore[arg-type]
    assert handle.bounds == [waited]
    assert isinstance(answer, RolloutStatus) and answer.state == RolloutState.ROLLED_BACK
