"""Stopping is open to all; going forward takes a verified person (real SSH keys, real check)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.freezes import FreezeReader
from activities.identity import ALLOWED_SIGNERS_ENV, GROUPS_ENV, REQUIRE_ENV, verify_command
from client import signing
from client.freezes import calendar_freezes
from client.leases import holder
from client.operations import CommandRefused, send_command, start_rollout
from client.releases import send_release_command
from plans import (
    CommandKind,
    CommandRecord,
    OperatorCommand,
    Plan,
    RolloutError,
    RolloutState,
)
from plans.governance.approvals import FREEZE_REMOVE, CommandClaim
from plans.governance.freezes import FREEZE_CALENDAR_ID, Freeze, FreezeRemoval, FreezeRequest
from plans.release_plan import ReleasePlan
from plans.runtime.release import ReleaseCommand, ReleaseState
from starter import governance
from tests.keys import Keys, made_keys, trusting
from tests.workflow.conftest import Doubles, make_plan, skip
from tests.workflow.fleet_doubles import FleetDoubles, fleet_worker, make_fleet, start
from tests.workflow.fleet_doubles import until as release_until
from tests.workflow.test_rollout_workflow import finish, rolled_back, settle, status_of, until
from workflows.freezes import FreezeCalendar


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return made_keys(tmp_path)


@pytest.fixture
def trust(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Keys:
    return trusting(keys, monkeypatch)


# -- freezes: removing one lets traffic increase again ---------------------------------------


@pytest.fixture
async def calendar(env: WorkflowEnvironment) -> AsyncIterator[str]:
    queue = f"freezes-{uuid.uuid4().hex[:6]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[FreezeCalendar],
        activities=[*FreezeReader(env.client).activities(), verify_command],
    ):
        yield queue


async def frozen(env: WorkflowEnvironment, queue: str) -> Freeze:
    now = await env.get_current_time()
    request = FreezeRequest(
        service="checkout", start=now, end=now + timedelta(days=2), reason="year end", by="kim"
    )
    return await governance.add_freeze(env.client, request, queue)


async def signed_removal(
    env: WorkflowEnvironment, keys: Keys, person: str, freeze_id: str, subject: str = ""
) -> FreezeRemoval:
    described = await env.client.get_workflow_handle(FREEZE_CALENDAR_ID).describe()
    text = signing.claim(
        FREEZE_REMOVE,
        FREEZE_CALENDAR_ID,
        signing.first_run_id(described),
        by=person,
        reason="incident over",
        subject=subject or freeze_id,
    )
    signature = await signing.sign(text, signing.SigningKey(path=keys.key(person)))
    return FreezeRemoval(id=freeze_id, by=person, reason="incident over", signed=signature)


async def test_where_the_worker_requires_it_a_freeze_goes_only_with_a_verified_person(
    env, calendar, trust: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "on")
    freeze = await frozen(env, calendar)
    unsigned = FreezeRemoval(id=freeze.id, by="kim", reason="done")
    with pytest.raises(RolloutError) as refused:
        await governance.remove_freeze(env.client, unsigned, calendar)
    assert str(refused.value) == (
        "freeze-remove: removing a freeze needs a signed freeze-remove command from a person"
        f" the worker knows; run rollout freeze remove {freeze.id} --reason ... with your SSH"
        ' key configured (see docs/governance.md, "Approvers")'
    )
    stranger = await signed_removal(env, trust, "mallory", freeze.id)
    with pytest.raises(RolloutError, match=r"which the worker's allowed_signers .* does not list"):
        await governance.remove_freeze(env.client, stranger, calendar)
    elsewhere = await signed_removal(env, trust, "ana", freeze.id, subject="f0000000")
    with pytest.raises(RolloutError, match="the signature is for freeze 'f0000000'"):
        await governance.remove_freeze(env.client, elsewhere, calendar)
    assert [f.id for f in await calendar_freezes(env.client)] == [freeze.id]

    good = await signed_removal(env, trust, "ana", freeze.id)
    assert (await governance.remove_freeze(env.client, good, calendar)).id == freeze.id
    assert await calendar_freezes(env.client) == []
    removed = (await governance.recent_removals(env.client))[-1]
    assert removed.by == "ana" and removed.verified == trust.fingerprint("ana")
    assert removed.describe().endswith(
        f"removed by verified ana ({trust.fingerprint('ana')}): incident over"
    )
    again = await frozen(env, calendar)
    replayed = good.model_copy(update={"id": again.id})
    with pytest.raises(RolloutError, match="this signed command was used already"):
        await governance.remove_freeze(env.client, replayed, calendar)


async def test_a_removal_says_who_and_why_even_unsigned(
    env, calendar, trust: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    freeze = await frozen(env, calendar)
    unsigned = FreezeRemoval(id=freeze.id, by="kim", reason="the launch moved")
    await governance.remove_freeze(env.client, unsigned, calendar)
    removed = (await governance.recent_removals(env.client))[-1]
    assert removed.describe().endswith("removed by claimed kim: the launch moved")


# -- rollouts: a plan that names approvers --------------------------------------------------


@pytest.fixture
def no_own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator running these tests has no SSH key `rollout` would find by itself."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ROLLOUT_DIR", str(tmp_path / "no-stack"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)


SIGNAL_TAKEN_S = 1.5
# The time-skipping server fails a workflow task that a command arrives during while a query
# of the last one is answered; the tests let the rollout's last task finish first.
QUIET_S = 0.5


async def waiting_for_approval(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    await until(handle, lambda s: s.state == RolloutState.AWAITING_APPROVAL, env)
    await asyncio.sleep(QUIET_S)


def gated(**overrides: Any) -> Plan:
    """A plan whose first stage waits for an approval from the sre-leads."""
    fields: dict[str, Any] = {
        "approvers": ["sre-leads"],
        "stages": [
            {"name": "canary", "weight": 10, "bake": "1m", "check_every": "1m", "approval": True},
            {"name": "full", "weight": 100, "bake": "10m", "check_every": "10m"},
        ],
    }
    return make_plan(**(fields | overrides))


async def signed(
    env: WorkflowEnvironment,
    keys: Keys,
    person: str,
    kind: CommandKind,
    handle: WorkflowHandle[Any, Any],
    **claimed: Any,
) -> OperatorCommand:
    """``kind`` signed by ``person`` for the rollout's first run, at the test server's time."""
    fields: dict[str, Any] = {
        "kind": kind.value,
        "workflow_id": handle.id,
        "run_id": handle.first_execution_run_id or handle.result_run_id,
        "by": person,
        "at": await env.get_current_time(),
        "nonce": secrets.token_hex(16),
    }
    text = CommandClaim.model_validate(fields | claimed)
    signature = await signing.sign(text, signing.SigningKey(path=keys.key(person)))
    return OperatorCommand(kind=kind, by=person, signed=signature)


async def recorded(handle: WorkflowHandle[Any, Any], count: int) -> CommandRecord:
    """The ``count``-th command the rollout recorded, once it took the signal just sent.

    A signal's forward command waits for the worker's check of its signature, a local
    activity; the time-skipping test server fails a workflow task that any read of the run
    (a query, its history) arrives in the middle of, so the test gives the check a moment
    before it looks (a real server answers such reads after the task).
    """
    await asyncio.sleep(SIGNAL_TAKEN_S)
    for _ in range(100):
        commands = (await status_of(handle)).commands
        if len(commands) >= count:
            return commands[count - 1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"the rollout recorded fewer than {count} commands")


async def test_only_a_verified_approver_moves_it_forward(
    env, worker, doubles: Doubles, trust: Keys, no_own_key: None
) -> None:
    plan = gated()
    handle = await start_rollout(env.client, plan, worker)
    await waiting_for_approval(env, handle)

    # The CLI without a key: refused at once, saying how to do it right.
    with pytest.raises(CommandRefused) as unsigned:
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE))
    assert str(unsigned.value) == (
        "approve: this rollout needs a signed approval from one of [sre-leads]; run rollout"
        f" approve {plan.service} with your SSH key configured"
        ' (see docs/governance.md, "Approvers")'
    )
    # The Temporal UI (or `temporal workflow signal`): a forged name, recorded as refused.
    await handle.signal("promote", {"by": "cab"})
    ui = await recorded(handle, 1)
    assert (ui.kind, ui.by, ui.verified, ui.accepted) == ("promote", "cab", "", False)
    assert ui.note.startswith("promote: this rollout needs a signed promote command from one of")
    # Signed by a key the worker does not know.
    stranger = await signed(env, trust, "mallory", CommandKind.APPROVE, handle)
    with pytest.raises(CommandRefused, match=r"signed by key SHA256:.* does not list"):
        await send_command(env.client, plan.service, stranger)
    # Signed by an approver, but for another run of the rollout, or another command.
    elsewhere = await signed(env, trust, "ana", CommandKind.APPROVE, handle, run_id="older-run")
    with pytest.raises(CommandRefused, match="signature is for another run of rollout-"):
        await send_command(env.client, plan.service, elsewhere)
    moved = await signed(env, trust, "ana", CommandKind.PROMOTE, handle)
    await handle.signal("approve", {"by": "ana", "signed": moved.signed.model_dump()})
    assert "the signature is for 'promote', not 'approve'" in (await recorded(handle, 4)).note

    status = await status_of(handle)
    assert doubles.shifts == [10] and status.state == RolloutState.AWAITING_APPROVAL
    assert sum(not c.accepted for c in status.commands) == 4
    audit = [e.text for e in status.events if e.kind == "command"]
    assert audit[0].startswith("promote by claimed cab: refused: promote: this rollout needs")
    mallory = trust.fingerprint("mallory")
    unknown = f"approve by claimed mallory: refused: approve: signed by key {mallory}"
    assert any(a.startswith(unknown) for a in audit)

    good = await signed(env, trust, "ana", CommandKind.APPROVE, handle)
    record = await send_command(env.client, plan.service, good)
    assert record.accepted and record.by == "ana" and record.verified == trust.fingerprint("ana")
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and doubles.shifts == [10, 100]
    final = await status_of(handle)
    verified = f"approve by verified ana ({trust.fingerprint('ana')}): taken"
    assert verified in [e.text for e in final.events]


async def test_the_cli_signs_the_start_and_the_commands_with_the_operators_key(
    env, worker, doubles: Doubles, trust: Keys, no_own_key: None
) -> None:
    plan = gated(not_by_starter=True)
    handle = await start_rollout(env.client, plan, worker)
    assert await signing.claim_start(handle, str(trust.key("ana"))) == ""
    await waiting_for_approval(env, handle)
    assert any(
        e.text.startswith("started by verified ana") for e in (await status_of(handle)).events
    )
    ask = OperatorCommand(kind=CommandKind.APPROVE, by="whoever", reason="dashboards green")
    with pytest.raises(CommandRefused, match="ana started this rollout"):
        await send_command(env.client, plan.service, ask, key=str(trust.key("ana")))
    record = await send_command(env.client, plan.service, ask, key=str(trust.key("bo")))
    assert (record.by, record.verified) == ("bo", trust.fingerprint("bo"))
    assert (await settle(env, handle)).state == RolloutState.PROMOTED


async def test_until_the_worker_has_a_trust_file_it_says_how_to_set_one_up(
    env, worker, doubles: Doubles, keys: Keys, no_own_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOWED_SIGNERS_ENV, raising=False)
    plan = gated()
    handle = await start_rollout(env.client, plan, worker)
    await waiting_for_approval(env, handle)
    good = await signed(env, keys, "ana", CommandKind.APPROVE, handle)
    with pytest.raises(CommandRefused) as refused:
        await send_command(env.client, plan.service, good)
    assert str(refused.value).startswith(
        "approve: the worker cannot verify signatures: the worker has no allowed_signers file:"
        " set ROLLOUT_ALLOWED_SIGNERS on the worker"
    )
    assert "`rollout dev up` makes one" in str(refused.value)
    assert doubles.shifts == [10]
    await finish(env, handle)


async def test_a_worker_that_requires_it_asks_every_plan_for_a_verified_person(
    env, worker, doubles: Doubles, trust: Keys, no_own_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = gated(approvers=[])
    handle = await start_rollout(env.client, plan, worker)
    await waiting_for_approval(env, handle)
    monkeypatch.setenv(REQUIRE_ENV, "on")
    await handle.signal("approve", {"by": "lee"})
    refused = await recorded(handle, 1)
    assert not refused.accepted and refused.note.startswith(
        "approve: this rollout needs a signed approval from a person the worker knows"
    )
    monkeypatch.delenv(REQUIRE_ENV)
    # Off again: a plan without approvers takes a name as typed, and says it was claimed.
    record = await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE, by="lee")
    )
    assert record.accepted and (record.by, record.verified) == ("lee", "")
    assert "approve by claimed lee: taken" in [e.text for e in (await status_of(handle)).events]
    assert (await settle(env, handle)).state == RolloutState.PROMOTED


async def test_a_key_that_cannot_sign_is_named_in_the_refusal(
    env, worker, doubles: Doubles, trust: Keys, tmp_path: Path, no_own_key: None
) -> None:
    broken = tmp_path / "home" / ".ssh" / "id_ed25519"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a key\n")
    broken.chmod(0o600)
    plan = gated()
    handle = await start_rollout(env.client, plan, worker)
    await waiting_for_approval(env, handle)
    with pytest.raises(CommandRefused) as refused:
        await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE))
    said = str(refused.value)
    assert said.startswith("approve: this rollout needs a signed approval from one of [sre-leads]")
    assert f"(it went unsigned: could not sign the approve command with {broken}:" in said
    await finish(env, handle)


async def test_stopping_needs_no_signature(
    env, worker, doubles: Doubles, trust: Keys, no_own_key: None
) -> None:
    plan = gated()
    handle = await start_rollout(env.client, plan, worker)
    await waiting_for_approval(env, handle)
    await handle.signal("pause", {"by": "anyone"})
    assert (await recorded(handle, 1)).accepted
    await handle.signal("rollback", {"by": "anyone", "reason": "looks wrong"})
    await rolled_back(env, handle)
    assert doubles.shifts == [10, 0]


async def test_a_signed_command_is_good_once_even_across_runs(
    env, worker, doubles: Doubles, trust: Keys, no_own_key: None
) -> None:
    plan = make_plan(
        approvers=["ana"],
        stages=[{"name": "a", "weight": 10, "bake": "1h", "check_every": "30s"}],
    )
    handle = await start_rollout(env.client, plan, worker, checks_per_run=2)
    await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.PAUSE))
    by_bo = await signed(env, trust, "bo", CommandKind.RESUME, handle)
    with pytest.raises(CommandRefused, match=r"verified bo \(SHA256:.*\) is not one of the"):
        await send_command(env.client, plan.service, by_bo)
    resume = await signed(env, trust, "ana", CommandKind.RESUME, handle)
    assert (await send_command(env.client, plan.service, resume)).accepted
    await send_command(env.client, plan.service, OperatorCommand(kind=CommandKind.PAUSE))
    await until(handle, lambda s: s.run_count >= 2, env, step=timedelta(seconds=30))
    await asyncio.sleep(QUIET_S)
    # The same signed resume again, two minutes on and in a new run: refused.
    await handle.signal("resume", {"by": "ana", "signed": resume.signed.model_dump()})
    replayed = await recorded(handle, 5)
    assert not replayed.accepted and "this signed command was used already" in replayed.note
    later = await signed(env, trust, "ana", CommandKind.RESUME, handle)
    await skip(env, timedelta(minutes=6))
    await asyncio.sleep(QUIET_S)
    with pytest.raises(CommandRefused, match="more than 5 minutes from the worker's time"):
        await send_command(env.client, plan.service, later)
    assert (await status_of(handle)).paused
    await finish(env, handle)


async def test_not_by_starter_and_two_approvals(
    env, worker, doubles: Doubles, keys: Keys, no_own_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [(name, name) for name in ("ana", "bo", "cy")]
    monkeypatch.setenv(ALLOWED_SIGNERS_ENV, str(keys.allowed_signers(*people)))
    monkeypatch.setenv(GROUPS_ENV, str(keys.groups("sre-leads: ana, bo, cy\n")))
    trust = keys
    plan = gated(approvals=2, not_by_starter=True)
    handle = await start_rollout(env.client, plan, worker)
    unclaimed = await signed(env, trust, "bo", CommandKind.APPROVE, handle)
    await waiting_for_approval(env, handle)
    with pytest.raises(CommandRefused, match="nobody verified started this rollout"):
        await send_command(env.client, plan.service, unclaimed)
    # ana started it (`rollout start` signs that); she may not approve it herself.
    start = await signed(env, trust, "ana", CommandKind.APPROVE, handle)
    claim = start.signed.claim()
    text = claim.model_copy(update={"kind": "start"})
    await handle.signal(
        "started_by", await signing.sign(text, signing.SigningKey(path=trust.key("ana")))
    )
    await asyncio.sleep(SIGNAL_TAKEN_S)
    events = (await status_of(handle)).events
    assert any(e.text.startswith("started by verified ana (SHA256:") for e in events)
    own = await signed(env, trust, "ana", CommandKind.APPROVE, handle)
    with pytest.raises(CommandRefused, match="ana started this rollout and not_by_starter is set"):
        await send_command(env.client, plan.service, own)
    first = await send_command(
        env.client, plan.service, await signed(env, trust, "bo", CommandKind.APPROVE, handle)
    )
    assert first.accepted and "1 of 2 approvals (bo)" in first.note
    again = await send_command(
        env.client, plan.service, await signed(env, trust, "bo", CommandKind.APPROVE, handle)
    )
    assert "bo approved already" in again.note
    assert (await status_of(handle)).state == RolloutState.AWAITING_APPROVAL
    assert doubles.shifts == [10]
    second = await send_command(
        env.client, plan.service, await signed(env, trust, "cy", CommandKind.APPROVE, handle)
    )
    assert second.accepted and second.note == "approved by bo, cy"
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    assert doubles.shifts == [10, 100]


# -- the lease: a typed name frees no target ------------------------------------------------


async def test_a_release_signal_from_anyone_but_the_ending_owner_frees_nothing(
    env, leased, doubles: Doubles
) -> None:
    plan = make_plan(service="held", stages=[{"name": "a", "weight": 20, "bake": "1h"}])
    handle = await start_rollout(env.client, plan, leased)
    await until(handle, lambda s: s.state == RolloutState.BAKING, env)
    lease = env.client.get_workflow_handle(plan.target_lease_id)
    owner_run = (await handle.describe()).run_id
    await lease.signal("release", "rollout-held")  # the owner's name, typed
    await lease.signal("release", {"owner": "rollout-held", "run_id": owner_run})
    await asyncio.sleep(SIGNAL_TAKEN_S)
    held = await holder(env.client, plan.target_lease_id)
    assert held is not None and held[0].owner == "rollout-held"
    # The owner's own release, as it ends, frees the target at once.
    assert (await settle(env, handle)).state == RolloutState.PROMOTED
    assert await holder(env.client, plan.target_lease_id) is None
    assert await lease.result() == "released by rollout-held"


# -- a release: it verifies, its targets check the same signature -----------------------------


def approved_fleet(**overrides: Any) -> ReleasePlan:
    """Two targets in two waves; each target's first stage, and the second wave, need approval."""
    stages = [
        {"name": "canary", "weight": 10, "bake": "1m", "check_every": "1m", "approval": True},
        {"name": "full", "weight": 100, "bake": "10m", "check_every": "10m"},
    ]
    return make_fleet(
        approvers=["sre-leads"],
        stages=stages,
        targets={name: {"placeholders": {"region": name}} for name in ("staging", "eu")},
        waves=[{"targets": ["staging"]}, {"targets": ["eu"], "approval": True}],
        **overrides,
    )


async def for_release(
    env: WorkflowEnvironment,
    keys: Keys,
    person: str,
    kind: CommandKind,
    release: WorkflowHandle[Any, Any],
    target: str = "",
) -> ReleaseCommand:
    """``kind`` signed by ``person`` for the release (and ``target``), at the server's time."""
    signed_command = await signed(env, keys, person, kind, release, target=target)
    return ReleaseCommand(command=signed_command, target=target or None)


async def child_waits(env: WorkflowEnvironment, fleet: ReleasePlan, target: str) -> Any:
    child = env.client.get_workflow_handle(fleet.child_id(target))
    for _ in range(200):
        with contextlib.suppress(RPCError):
            if (await status_of(child)).state == RolloutState.AWAITING_APPROVAL:
                await asyncio.sleep(QUIET_S)
                return child
        await skip(env, timedelta(minutes=1))
    raise AssertionError(f"{target} never waited for approval")


async def test_a_release_forwards_a_verified_approval_and_its_targets_check_it(
    env, trust: Keys, no_own_key: None
) -> None:
    doubles = FleetDoubles()
    fleet = approved_fleet()
    async with fleet_worker(env, doubles) as queue:
        release = await start(env.client, fleet, queue)
        staging = await child_waits(env, fleet, "staging")
        unsigned = ReleaseCommand(
            command=OperatorCommand(kind=CommandKind.APPROVE), target="staging"
        )
        with pytest.raises(CommandRefused, match=f"run rollout approve {fleet.service} --target"):
            await send_release_command(env.client, fleet.service, unsigned)
        approve = await for_release(env, trust, "ana", CommandKind.APPROVE, release, "staging")
        record = await send_release_command(env.client, fleet.service, approve)
        assert record.sent_to == ["staging"] and record.who().startswith("verified ana (SHA256:")
        taken = await recorded(staging, 1)
        assert (taken.by, taken.verified, taken.accepted) == ("ana", trust.fingerprint("ana"), True)
        # The same signed approval again: used already.
        with pytest.raises(CommandRefused, match="was used already"):
            await send_release_command(env.client, fleet.service, approve)
        # The second wave waits for a release-wide approval, verified too.
        await release_until(env, release, lambda s: s.state == ReleaseState.AWAITING_APPROVAL)
        await asyncio.sleep(QUIET_S)
        wave = await for_release(env, trust, "bo", CommandKind.APPROVE, release)
        assert (await send_release_command(env.client, fleet.service, wave)).accepted
        eu = await child_waits(env, fleet, "eu")
        # Signed for the release's staging target, it is refused by eu, sent straight there.
        forged = {"by": "ana", "signed": approve.command.signed.model_dump()}
        await eu.signal("approve", forged)
        assert "names target 'staging', not this rollout's target" in (await recorded(eu, 1)).note
        assert doubles.weights_of("eu") == [10]
        await release.terminate("test over")


async def test_not_by_starter_reaches_the_targets_of_a_release(
    env, trust: Keys, no_own_key: None
) -> None:
    doubles = FleetDoubles()
    fleet = approved_fleet(not_by_starter=True)
    async with fleet_worker(env, doubles) as queue:
        release = await start(env.client, fleet, queue)
        start_text = (await for_release(env, trust, "ana", CommandKind.APPROVE, release)).command
        claim = start_text.signed.claim()
        text = claim.model_copy(update={"kind": "start"})
        await release.signal(
            "started_by", await signing.sign(text, signing.SigningKey(path=trust.key("ana")))
        )
        staging = await child_waits(env, fleet, "staging")
        own = await for_release(env, trust, "ana", CommandKind.APPROVE, release, "staging")
        with pytest.raises(CommandRefused, match="ana started this rollout"):
            await send_release_command(env.client, fleet.service, own)
        # Straight to the target, the starter's own signature is refused there too.
        await staging.signal("approve", {"by": "ana", "signed": own.command.signed.model_dump()})
        assert "ana started this rollout" in (await recorded(staging, 1)).note
        other = await for_release(env, trust, "bo", CommandKind.APPROVE, release, "staging")
        assert (await send_release_command(env.client, fleet.service, other)).accepted
        assert (await recorded(staging, 2)).accepted
        await release.terminate("test over")
