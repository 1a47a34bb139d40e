"""Stopping is open to all; going forward takes a verified person (real SSH keys, real check)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.freezes import FreezeReader, calendar_freezes
from activities.identity import REQUIRE_ENV, verify_command
from plans import RolloutError
from plans.approvals import FREEZE_REMOVE
from plans.freezes import FREEZE_CALENDAR_ID, Freeze, FreezeRemoval, FreezeRequest
from starter import governance, signing
from tests.keys import Keys, made_keys, trusting
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
        ' key configured (see README "Approvers")'
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
