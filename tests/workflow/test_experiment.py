"""ExperimentWorkflow on the time-skipping server, its router and judge doubled by name.

The router double records every set of shares; the judge double answers the primary gate
with an interval of the variant's conversion over the control's, and the guardrail with a
pass or a fail, as each test scripts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.identity import verify_command
from activities.ownership import TargetLeases
from client.api import RolloutError, Rollouts
from client.experiments import start_experiment
from client.operations import start_rollout
from plans import (
    ClaimAnswer,
    CommandRecord,
    GateCheck,
    GateOutcome,
    Notification,
    OperatorCommand,
    TargetClaim,
    Verdict,
)
from plans.experiment import ExperimentPlan, parse_experiment_plan
from plans.runtime.experiment import (
    ExperimentReportRequest,
    ExperimentResult,
    ExperimentState,
    ExperimentStatus,
)
from plans.runtime.messages import EXPERIMENT_STATUS, ROLLOUT_COMMAND
from plans.runtime.shares import SharesRequest, VariantShares
from tests.workflow.conftest import make_plan, owner_watch, skip
from tests.workflow.test_replay import assert_of_this_version
from worker.main import workflow_runner
from workflows.experiment import ExperimentWorkflow
from workflows.lease import TargetLease

HISTORIES = Path(__file__).parent.parent / "histories" / "experiment"

GATES = [
    {
        "name": "conversion",
        "kind": "sequential",
        "test": "rate",
        "direction": "decrease",
        "query": 'sum(rate(orders{server="$target"}[$window]))'
        ' / sum(rate(visits{server="$target"}[$window]))',
        "samples_query": 'sum(increase(visits{server="$target"}[$window]))',
    },
    {
        "name": "errors",
        "kind": "sequential",
        "test": "rate",
        "query": 'sum(rate(errors{server="$target"}[$window]))'
        ' / sum(rate(requests{server="$target"}[$window]))',
        "samples_query": 'sum(increase(requests{server="$target"}[$window]))',
    },
]


# A channel that hears every event: the notify double keeps what it is told.
CHAT = {"channels": [{"name": "chat", "url_env": "ROLLOUT_SHOP_CHAT_URL"}]}


def experiment_plan(
    variants: int = 3, max_duration: str = "2h", notify: dict[str, Any] | None = None
) -> ExperimentPlan:
    names = ["a", "b", "c", "d"][:variants]
    shares = [100 - 25 * (variants - 1)] + [25] * (variants - 1)
    told = {"notify": notify} if notify else {}
    return parse_experiment_plan(
        told
        | {
            "service": "shop",
            "router": {
                "kind": "haproxy",
                "runtime_api": "tcp://127.0.0.1:9999",
                "backend": "shop",
            },
            "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
            "gates": GATES,
            "experiment": {
                "control": "a",
                "variants": [{"name": n, "share": s} for n, s in zip(names, shares, strict=True)],
                "primary": "conversion",
                "guardrails": ["errors"],
                "check_every": "10m",
                "max_duration": max_duration,
            },
        }
    )


# variant, check number (of that variant) -> (effect, low, high) of conversion over control's
Effect = Callable[[str, int], tuple[float, float, float]]


def unclear(variant: str, n: int) -> tuple[float, float, float]:
    return (1.01, 0.9, 1.12)


@dataclass
class Router:
    """The router and judge doubles; every set of shares and every judged variant kept."""

    effect: Effect = unclear
    failing: set[tuple[str, int]] = field(default_factory=set)  # (variant, check) errors fail
    starved: set[tuple[str, int]] = field(default_factory=set)  # errors inconclusive there
    sets: list[dict[str, int]] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    spans: list[timedelta | None] = field(default_factory=list)
    reports: list[ExperimentReportRequest] = field(default_factory=list)
    told: list[Notification] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [m.notice.kind.value for m in self.told if m.notice is not None]

    def activities(self) -> list[Any]:
        @activity.defn(name="set_variant_shares")
        def set_variant_shares(req: SharesRequest) -> VariantShares:
            self.sets.append(dict(req.shares.shares))
            return req.shares

        @activity.defn(name="read_variant_shares")
        def read_variant_shares(req: SharesRequest) -> VariantShares:
            return VariantShares(shares=self.sets[-1] if self.sets else {})

        @activity.defn(name="check_gates")
        def check_gates(req: GateCheck) -> list[Verdict]:
            variant = req.placeholders["canary"]
            assert req.placeholders["stable"] == "a"
            self.judged.append(variant)
            self.spans.append(req.stage_span)
            n = self.judged.count(variant)
            found = []
            for gate in req.gates:
                if gate.name == "conversion":
                    self.confidences.append(getattr(gate, "confidence", 0.0))
                    effect, low, high = self.effect(variant, n)
                    found.append(
                        Verdict(
                            gate=gate.name,
                            kind="sequential",
                            outcome=GateOutcome.PASS,
                            reason=f"rate x{effect:g} [x{low:g}, x{high:g}]",
                            effect=effect,
                            effect_low=low,
                            effect_high=high,
                            at=datetime.now(UTC),
                        )
                    )
                elif (variant, n) in self.starved:
                    found.append(
                        Verdict(
                            gate=gate.name,
                            kind="sequential",
                            outcome=GateOutcome.INCONCLUSIVE,
                            reason="canary: 12 requests in the window, below min_samples 50",
                            at=datetime.now(UTC),
                        )
                    )
                else:
                    bad = (variant, n) in self.failing
                    found.append(
                        Verdict(
                            gate=gate.name,
                            kind="sequential",
                            outcome=GateOutcome.FAIL if bad else GateOutcome.PASS,
                            reason="rate x3 [x2.1, x4] vs allowed x1" if bad else "",
                            at=datetime.now(UTC),
                        )
                    )
            return found

        @activity.defn(name="claim_target")
        def claim_target(claim: TargetClaim) -> ClaimAnswer:
            return ClaimAnswer(claimed=True, owner=claim.owner)

        @activity.defn(name="release_target")
        def release_target(claim: TargetClaim) -> bool:
            return True

        @activity.defn(name="write_experiment_report")
        def write_experiment_report(req: ExperimentReportRequest) -> str:
            self.reports.append(req)
            return f"file:///reports/{req.run_id}/experiment.md"

        @activity.defn(name="notify")
        def notify(message: Notification) -> None:
            self.told.append(message)

        return [
            notify,
            write_experiment_report,
            set_variant_shares,
            read_variant_shares,
            check_gates,
            claim_target,
            release_target,
            verify_command,
        ]


@contextlib.asynccontextmanager
async def running(
    env: WorkflowEnvironment, router: Router, plan: ExperimentPlan
) -> AsyncIterator[WorkflowHandle[Any, ExperimentResult]]:
    queue = f"exp-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ExperimentWorkflow],
            activities=router.activities(),
            activity_executor=executor,
        ):
            yield await start_experiment(env.client, plan, queue)


async def status(handle: WorkflowHandle[Any, Any]) -> ExperimentStatus:
    answer: ExperimentStatus = await handle.query(
        EXPERIMENT_STATUS.name, result_type=ExperimentStatus
    )
    return answer


async def until(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], holds: Callable[[Any], bool]
) -> ExperimentStatus:
    for _ in range(500):
        found = await status(handle)
        if holds(found):
            return found
        await skip(env, timedelta(minutes=1))
    raise AssertionError(f"never held; last status {found}")


async def kept(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With ROLLOUT_CAPTURE_HISTORIES=1, keep the run's history for the replay test."""
    if os.environ.get("ROLLOUT_CAPTURE_HISTORIES") == "1":
        history = await handle.fetch_history()
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_experiments_replay_without_nondeterminism(path: Path) -> None:
    assert_of_this_version(path)
    history = WorkflowHistory.from_json(f"replay-{path.stem}", json.loads(path.read_text()))
    replayer = Replayer(
        workflows=[ExperimentWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_the_recorded_experiments_are_kept() -> None:
    assert {p.stem for p in HISTORIES.glob("*.json")} >= {"rolled_forward", "rolled_back"}


async def test_the_variant_shown_better_is_rolled_forward(env: WorkflowEnvironment) -> None:
    def effect(variant: str, n: int) -> tuple[float, float, float]:
        if variant == "b" and n >= 3:
            return (1.2, 1.08, 1.33)  # conversion up 20%, the interval above 1
        return (1.01, 0.9, 1.12)

    router = Router(effect=effect)
    async with running(env, router, experiment_plan()) as handle:
        result = await handle.result()
        shown = await status(handle)
        await kept(handle, "rolled_forward")
    assert router.sets[0] == {"a": 50, "b": 25, "c": 25}
    assert router.sets[-1] == {"a": 0, "b": 100, "c": 0}
    assert result.state == ExperimentState.ROLLED_FORWARD
    assert result.winner == "b"
    assert "b shown better than a" in result.reason and "x1.2" in result.reason
    # Two variants against the control: each judged at 1 - 0.02 / 2.
    assert router.confidences and all(c == pytest.approx(0.99) for c in router.confidences)
    b = next(v for v in shown.variants if v.name == "b")
    assert b.better and b.share == 100 and b.effect_text() == "x1.2 [x1.08, x1.33]"
    # The report is written once, with the end as the status says it.
    (report,) = router.reports
    assert report.status.winner == "b" and report.status.state == ExperimentState.ROLLED_FORWARD
    # Each variant's effect at every check it was judged at, for the report's plot.
    assert [p.effect for p in report.trail["b"]] == [1.01, 1.01, 1.2]
    assert len(report.trail["c"]) == router.judged.count("c")
    assert any(e.text.startswith("report written: file:///reports/") for e in shown.events)
    assert router.told == []  # no channels, nothing told


async def test_the_channels_hear_the_start_a_variant_taken_out_and_the_winner(
    env: WorkflowEnvironment,
) -> None:
    def effect(variant: str, n: int) -> tuple[float, float, float]:
        return (1.2, 1.08, 1.33) if variant == "b" and n >= 3 else (1.01, 0.9, 1.12)

    router = Router(effect=effect, failing={("c", 2)})
    async with running(env, router, experiment_plan(notify=CHAT)) as handle:
        result = await handle.result()
    assert result.winner == "b"
    assert router.kinds() == ["started", "gate_failing", "promoted"]
    started, out, promoted = router.told
    assert started.text == "Experiment on shop started: a 50% / b 25% / c 25%"
    assert out.text.startswith("Experiment on shop: c taken out, its share to a: guardrail errors")
    assert promoted.text.startswith("Experiment on shop rolled forward: b shown better than a")
    assert all(m.channels[0].url_env == "ROLLOUT_SHOP_CHAT_URL" for m in router.told)
    assert len({m.notice.key for m in router.told if m.notice}) == 3  # each told once
    brief = promoted.notice.experiment if promoted.notice else None
    assert brief is not None and brief.variant == "b" and brief.control == "a"
    assert [(v.name, v.share) for v in brief.variants] == [("a", 0), ("b", 100), ("c", 0)]
    assert brief.variants[1].better and brief.variants[2].out.startswith("guardrail errors")
    assert promoted.notice and promoted.notice.report_url == (
        f"file:///reports/{router.reports[0].run_id}/experiment.md"
    )
    assert out.notice and out.notice.experiment and out.notice.experiment.variant == "c"
    assert [v.gate for v in out.notice.verdicts] == ["conversion", "errors"]


async def test_no_winner_keeps_the_control_at_max_duration(env: WorkflowEnvironment) -> None:
    router = Router()
    async with running(env, router, experiment_plan(max_duration="1h")) as handle:
        result = await handle.result()
        await kept(handle, "kept_control")
    assert result.state == ExperimentState.KEPT_CONTROL
    assert result.winner == ""
    assert router.sets[-1] == {"a": 100, "b": 0, "c": 0}
    assert "no variant was shown better than a within 1h" in result.reason
    # The tests' sharper look covers the hour and the check that ends it, at every check.
    assert set(router.spans) == {timedelta(hours=1, minutes=10)}
    # Checks every 10m for an hour: each variant judged about six times, not more.
    assert 5 <= router.judged.count("b") <= 7


async def test_a_failing_guardrail_takes_the_variant_out_at_once(env: WorkflowEnvironment) -> None:
    router = Router(failing={("c", 2)})
    async with running(env, router, experiment_plan(max_duration="1h")) as handle:
        result = await handle.result()
        shown = await status(handle)
    # The check that failed c moved its share to the control, before anything else was set.
    assert router.sets[1] == {"a": 75, "b": 25, "c": 0}
    assert router.judged.count("c") == 2  # never judged again
    assert router.judged.count("b") > 2
    c = next(v for v in shown.variants if v.name == "c")
    assert c.out.startswith("guardrail errors failed")
    assert result.state == ExperimentState.KEPT_CONTROL


async def test_a_guardrail_that_cannot_judge_pauses_the_experiment(
    env: WorkflowEnvironment,
) -> None:
    # b is shown better from its 4th check, but its guardrail could not judge its first 3:
    # the experiment pauses there, and nothing rolls forward until a person resumes it.
    def effect(variant: str, n: int) -> tuple[float, float, float]:
        return (1.3, 1.1, 1.5) if n >= 4 else (1.01, 0.9, 1.12)

    router = Router(effect=effect, starved={("b", 1), ("b", 2), ("b", 3)})
    plan = experiment_plan(variants=2, max_duration="2h", notify=CHAT)
    async with running(env, router, plan) as handle:
        held = await until(env, handle, lambda s: s.checks >= 5)
        assert held.state == ExperimentState.PAUSED and held.winner == ""
        paused = [e.text for e in held.events if e.kind == "pause"]
        assert paused == [
            "paused: b: guardrail errors inconclusive 3 check(s) in a row: canary: 12 requests"
            " in the window, below min_samples 50"
        ]
        assert held.variants[1].better and router.sets == [{"a": 75, "b": 25}]
        await handle.execute_update(
            ROLLOUT_COMMAND.name, OperatorCommand(kind="resume", by="ana"), result_type=Any
        )
        result = await handle.result()
    assert result.winner == "b" and router.sets[-1] == {"a": 0, "b": 100}
    assert router.kinds() == ["started", "paused", "promoted"]
    assert "paused: b: guardrail errors inconclusive 3 check(s)" in router.told[1].text


async def test_a_cancel_puts_the_control_back(env: WorkflowEnvironment) -> None:
    router = Router()
    async with running(env, router, experiment_plan()) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        shown = await status(handle)
    assert router.sets[-1] == {"a": 100, "b": 0, "c": 0}
    assert shown.state == ExperimentState.ROLLED_BACK
    assert any("restoring a to 100%" in e.text for e in shown.events)
    assert [r.status.state for r in router.reports] == [ExperimentState.ROLLED_BACK]


async def test_a_rollback_command_puts_the_control_back(env: WorkflowEnvironment) -> None:
    router = Router()
    async with running(env, router, experiment_plan()) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        record = await handle.execute_update(
            ROLLOUT_COMMAND.name,
            OperatorCommand(kind="rollback", by="ana", reason="checkout looks odd"),
            result_type=CommandRecord,
        )
        assert record.accepted
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        shown = await status(handle)
        await kept(handle, "rolled_back")
    assert "rolled back: rollback by ana (checkout looks odd)" in str(failed.value.cause)
    assert router.sets[-1] == {"a": 100, "b": 0, "c": 0}
    assert shown.state == ExperimentState.ROLLED_BACK


async def test_the_channels_hear_a_rollback_and_an_abort(env: WorkflowEnvironment) -> None:
    for kind, word in (("rollback", "rolled_back"), ("abort", "aborted")):
        router = Router()
        async with running(env, router, experiment_plan(notify=CHAT)) as handle:
            await until(env, handle, lambda s: s.checks >= 1)
            await handle.execute_update(
                ROLLOUT_COMMAND.name, OperatorCommand(kind=kind, by="ana"), result_type=Any
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        assert router.kinds() == ["started", word]
        end = router.told[-1]
        assert end.notice and end.notice.restored == [
            "a at 100% on haproxy shop via tcp://127.0.0.1:9999"
        ]
        assert end.text.startswith(f"Experiment on shop {word.replace('_', ' ')}: {kind} by ana")


async def test_a_person_promotes_the_variant_they_pick(env: WorkflowEnvironment) -> None:
    router = Router()
    async with running(env, router, experiment_plan(variants=2)) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ROLLOUT_COMMAND.name, OperatorCommand(kind="promote"))
        assert "name the variant to roll forward with --variant (a, b)" in str(refused.value.cause)
        await handle.execute_update(
            ROLLOUT_COMMAND.name, OperatorCommand(kind="promote", by="ana", variant="b")
        )
        result = await handle.result()
    assert result.state == ExperimentState.ROLLED_FORWARD
    assert result.winner == "b" and result.reason == "b promoted by ana"
    assert router.sets[-1] == {"a": 0, "b": 100}


async def test_the_ui_s_rollback_signal_puts_the_control_back(env: WorkflowEnvironment) -> None:
    router = Router()
    async with running(env, router, experiment_plan(variants=2)) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        await handle.signal("rollback", {"by": "ops", "reason": "from the UI"})
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert router.sets[-1] == {"a": 100, "b": 0}


async def test_promote_takes_a_listed_approver_s_signature(env: WorkflowEnvironment) -> None:
    plan = experiment_plan(variants=2)
    plan = plan.model_copy(
        update={"plan": plan.plan.model_copy(update={"approvers": ["release-managers"]})}
    )
    router = Router()
    async with running(env, router, plan) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ROLLOUT_COMMAND.name, OperatorCommand(kind="promote", by="ana", variant="b")
            )
        assert "signed" in str(refused.value.cause)
        # Going back needs nobody's signature.
        await handle.execute_update(
            ROLLOUT_COMMAND.name, OperatorCommand(kind="rollback", by="ana"), result_type=Any
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert router.sets[-1] == {"a": 100, "b": 0}


async def test_a_long_experiment_goes_on_in_new_runs(env: WorkflowEnvironment) -> None:
    def effect(variant: str, n: int) -> tuple[float, float, float]:
        return (1.3, 1.1, 1.5) if n >= 5 else (1.01, 0.9, 1.12)

    router = Router(effect=effect)
    queue = f"exp-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ExperimentWorkflow],
            activities=router.activities(),
            activity_executor=executor,
        ):
            handle = await start_experiment(
                env.client, experiment_plan(variants=2), queue, checks_per_run=2
            )
            result = await handle.result()
            shown = await status(handle)
            await kept(handle, "continued_as_new")
    assert result.winner == "b" and router.judged.count("b") == 5
    assert shown.checks == 5
    assert router.sets[0] == {"a": 75, "b": 25}  # set once, not again by each new run
    assert router.sets[-1] == {"a": 0, "b": 100}


async def test_a_pause_holds_the_winner_and_the_clock(env: WorkflowEnvironment) -> None:
    def effect(variant: str, n: int) -> tuple[float, float, float]:
        return (1.3, 1.1, 1.5) if n >= 2 else (1.01, 0.9, 1.12)

    router = Router()
    router.effect = effect
    async with running(env, router, experiment_plan(variants=2, max_duration="1h")) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        await handle.execute_update(
            ROLLOUT_COMMAND.name, OperatorCommand(kind="pause", by="ana"), result_type=Any
        )
        await skip(env, timedelta(hours=3))  # past max_duration, paused all along
        held = await status(handle)
        assert held.state == ExperimentState.PAUSED and held.winner == ""
        assert held.variants[1].better  # shown better, held back while paused
        assert router.sets == [{"a": 75, "b": 25}]
        await handle.execute_update(
            ROLLOUT_COMMAND.name, OperatorCommand(kind="resume", by="ana"), result_type=Any
        )
        result = await handle.result()
    assert result.winner == "b" and router.sets[-1] == {"a": 0, "b": 100}


async def test_a_terminated_experiment_s_lease_puts_the_control_back(
    env: WorkflowEnvironment,
) -> None:
    router = Router()
    doubled = [a for a in router.activities() if "target" not in a.__name__]
    ownership = [a for a in TargetLeases(env.client).activities() if a.__name__ != "owner_ended"]
    plan = experiment_plan(notify=CHAT)  # three variants: more than a rollout's restore sets
    queue = f"exp-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[ExperimentWorkflow, TargetLease],
            activities=[*doubled, *ownership, owner_watch(env.client)],
            activity_executor=executor,
        ):
            handle = await start_experiment(env.client, plan, queue)
            await until(env, handle, lambda s: s.checks >= 1)
            await handle.terminate("operator removed it")
            lease = env.client.get_workflow_handle(plan.target_lease_id, result_type=str)
            for _ in range(30):
                if (await lease.describe()).close_time is not None:
                    break
                await skip(env, timedelta(seconds=10))
            said = await lease.result()
    assert "rollout-shop was terminated without a rollback" in said
    assert "a 100% / b 0% / c 0%" in said and "read back" in said
    assert router.sets[-1] == {"a": 100, "b": 0, "c": 0}
    # The channels hear it from the lease, as a rollback.
    assert router.kinds() == ["started", "rolled_back"]
    assert router.told[-1].text == said
    assert router.told[-1].notice and router.told[-1].notice.key.endswith("/lease")


async def test_the_python_api_promotes_a_variant_and_only_of_an_experiment(
    env: WorkflowEnvironment,
) -> None:
    rollouts = Rollouts(env.client)
    router = Router()
    plan = experiment_plan(variants=2)
    async with running(env, router, plan) as handle:
        await until(env, handle, lambda s: s.checks >= 1)
        shown = await rollouts.experiment(plan.service)
        assert [v.share for v in shown.variants] == [75, 25]
        record = await rollouts.command(plan.service, "promote", by="ana", variant="b")
        assert record.accepted
        assert (await handle.result()).winner == "b"
    rollout = make_plan(service="plain")
    await start_rollout(env.client, rollout, "nobody-polls-this-queue")
    with pytest.raises(RolloutError, match="--variant b: 'plain' runs no experiment"):
        await rollouts.command("plain", "promote", variant="b")
