"""Who may go forward: the rules, the worker's check of real SSH signatures, the CLI's signing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.identity import (
    ALLOWED_SIGNERS_ENV,
    GROUPS_ENV,
    REQUIRE_ENV,
    read_groups,
    trust_from_env,
    verify_command,
)
from client import signing
from devstack.trust import write_dev_trust
from plans import CommandRecord
from plans.governance.approvals import (
    MAX_NONCES_KEPT,
    MAX_SKEW,
    ApprovalLedger,
    ApprovalRule,
    CommandClaim,
    Origin,
    ProofAnswer,
    ProofRequest,
    SignedCommand,
    Signer,
    count_approval,
    judge,
)
from plans.governance.freezes import Freeze, RemovedFreeze
from starter.render import command_table
from tests.keys import Keys, made_keys, trusting
from tests.unit.test_render import status, text_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HERE = [Origin(workflow_id="rollout-checkout", run_ids=["first-run", "this-run"])]
LEADS = ApprovalRule(approvers=["sre-leads"])
ANA = Signer(principals=["ana"], fingerprint="SHA256:ana", groups=["sre-leads"])
BO = Signer(principals=["bo"], fingerprint="SHA256:bo", groups=["sre-leads"])
HOW = "rollout approve checkout"


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return made_keys(tmp_path)


@pytest.fixture
def trust(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Keys:
    return trusting(keys, monkeypatch)


def text(**fields: object) -> CommandClaim:
    values: dict[str, object] = {
        "kind": "approve",
        "workflow_id": "rollout-checkout",
        "run_id": "first-run",
        "at": NOW,
        "nonce": "n" * 32,
    }
    return CommandClaim.model_validate(values | fields)


def signed(claim: CommandClaim) -> SignedCommand:
    return SignedCommand(payload=claim.text(), signature="-----BEGIN SSH SIGNATURE-----")


def decide(
    claim: CommandClaim | None,
    signer: Signer | None = ANA,
    rule: ApprovalRule = LEADS,
    ledger: ApprovalLedger | None = None,
    answer: ProofAnswer | None = None,
) -> str:
    answer = answer or ProofAnswer(trusted=True, signer=signer)
    return judge(
        rule,
        answer,
        None if claim is None else signed(claim),
        kind="approve",
        origins=HERE,
        now=NOW,
        ledger=ledger or ApprovalLedger(),
        how=HOW,
    ).refusal


def test_an_unsigned_approval_is_refused_with_the_way_to_sign_it() -> None:
    assert decide(None) == (
        "approve: this rollout needs a signed approval from one of [sre-leads]; run rollout"
        ' approve checkout with your SSH key configured (see docs/governance.md, "Approvers")'
    )


def test_without_approvers_an_unsigned_command_goes_as_claimed_unless_the_worker_requires() -> None:
    anyone = ApprovalRule()
    assert decide(None, rule=anyone, answer=ProofAnswer(trusted=False)) == ""
    required = ProofAnswer(trusted=True, required=True)
    assert "from a person the worker knows" in decide(None, rule=anyone, answer=required)


def test_a_worker_without_a_trust_file_says_how_to_set_one_up() -> None:
    answer = ProofAnswer(trusted=False, setup="set ROLLOUT_ALLOWED_SIGNERS ...")
    assert decide(text(), answer=answer) == (
        "approve: the worker cannot verify signatures: set ROLLOUT_ALLOWED_SIGNERS ..."
    )


@pytest.mark.parametrize(
    ("claim", "says"),
    [
        (text(kind="promote"), "the signature is for 'promote', not 'approve'"),
        (text(workflow_id="rollout-payments"), "is for rollout-payments, not this rollout"),
        (text(run_id="older-run"), "for another run of rollout-checkout (older-run)"),
        (text(target="eu"), "names target 'eu', not this rollout's target"),
        (text(at=NOW - MAX_SKEW - timedelta(seconds=1)), "more than 5 minutes from the worker's"),
        (text(at=NOW + MAX_SKEW + timedelta(seconds=1)), "more than 5 minutes from the worker's"),
    ],
)
def test_a_signature_for_something_else_is_refused(claim: CommandClaim, says: str) -> None:
    assert says in decide(claim)


def test_a_signed_command_is_good_once() -> None:
    ledger = ApprovalLedger()
    claim = text()
    assert decide(claim, ledger=ledger) == ""
    ledger.remember(claim, NOW)
    assert "was used already; sign a new one: rollout approve checkout" in decide(
        claim, ledger=ledger
    )


def test_the_signer_must_be_an_approver_by_name_or_group() -> None:
    mallory = Signer(principals=["mallory"], fingerprint="SHA256:m")
    assert "verified mallory (SHA256:m) is not one of the approvers [sre-leads]" in decide(
        text(), signer=mallory
    )
    assert decide(text(), signer=ANA, rule=ApprovalRule(approvers=["ana"])) == ""
    # A second principal on the key's allowed_signers line counts as a group too.
    lead = Signer(principals=["cy", "sre-leads"], fingerprint="SHA256:c")
    assert decide(text(), signer=lead) == ""


def test_not_by_starter_refuses_the_starter_and_an_unknown_start() -> None:
    rule = ApprovalRule(approvers=["sre-leads"], not_by_starter=True)
    assert "nobody verified started this rollout" in decide(text(), rule=rule)
    started = ApprovalLedger(starter=ANA)
    assert "ana started this rollout and not_by_starter is set" in decide(
        text(), rule=rule, ledger=started
    )
    assert decide(text(), signer=BO, rule=rule, ledger=ApprovalLedger(starter=ANA)) == ""


def test_approvals_counts_distinct_people() -> None:
    rule = ApprovalRule(approvers=["sre-leads"], approvals=2)
    ledger = ApprovalLedger()
    assert count_approval(rule, ledger, "approve:1", ANA) == (
        False,
        "1 of 2 approvals (ana); one more from [sre-leads] is needed",
    )
    enough, note = count_approval(rule, ledger, "approve:1", ANA)
    assert not enough and "ana approved already" in note
    assert count_approval(rule, ledger, "approve:1", BO) == (True, "approved by ana, bo")
    assert count_approval(ApprovalRule(), ledger, "approve:2", None) == (True, "")


def test_the_ledger_keeps_only_nonces_that_could_still_be_fresh() -> None:
    ledger = ApprovalLedger()
    old = text(nonce="o" * 32, at=NOW - timedelta(hours=1))
    ledger.remember(old, NOW - timedelta(hours=1))
    for i in range(MAX_NONCES_KEPT + 10):
        ledger.remember(text(nonce=f"{i:032d}", at=NOW + timedelta(seconds=i / 100)), NOW)
    assert len(ledger.nonces) == MAX_NONCES_KEPT
    assert "o" * 32 not in ledger.nonces and f"{MAX_NONCES_KEPT + 9:032d}" in ledger.nonces


# -- the worker's check, with real keys ------------------------------------------------------


async def sign_as(people: Keys, person: str, claim: CommandClaim) -> SignedCommand:
    return await signing.sign(claim, signing.SigningKey(path=people.key(person)))


async def test_a_good_signature_names_the_person_their_key_and_groups(trust: Keys) -> None:
    answer = await verify_command(ProofRequest(signed=await sign_as(trust, "ana", text())))
    assert answer.trusted and not answer.problem
    assert answer.signer == Signer(
        principals=["ana"], fingerprint=trust.fingerprint("ana"), groups=["sre-leads"]
    )


async def test_an_unknown_key_is_named_by_its_fingerprint(trust: Keys) -> None:
    answer = await verify_command(ProofRequest(signed=await sign_as(trust, "mallory", text())))
    assert answer.signer is None
    assert f"signed by key {trust.fingerprint('mallory')}, which the worker's allowed_signers" in (
        answer.problem
    )


async def test_a_signature_moved_to_another_command_does_not_hold(trust: Keys) -> None:
    good = await sign_as(trust, "ana", text())
    moved = good.model_copy(update={"payload": text(kind="promote").text()})
    answer = await verify_command(ProofRequest(signed=moved))
    assert answer.signer is None and "does not hold for this command" in answer.problem
    garbage = good.model_copy(update={"signature": "trust me"})
    answer = await verify_command(ProofRequest(signed=garbage))
    assert answer.signer is None and "not an SSH signature" in answer.problem


async def test_a_signature_made_for_git_is_not_one_for_rollouts(trust: Keys) -> None:
    payload = text().text()
    made = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(trust.key("ana"))],
        input=payload.encode(),
        capture_output=True,
        check=True,
    )
    forged = SignedCommand(payload=payload, signature=made.stdout.decode())
    answer = await verify_command(ProofRequest(signed=forged))
    assert answer.signer is None and "does not hold for this command" in answer.problem


async def test_without_a_trust_file_the_answer_says_how_to_set_one_up(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOWED_SIGNERS_ENV, raising=False)
    answer = await verify_command(ProofRequest(signed=await sign_as(keys, "ana", text())))
    assert not answer.trusted and answer.signer is None
    assert "set ROLLOUT_ALLOWED_SIGNERS on the worker" in answer.setup
    assert "`rollout dev up` makes one" in answer.setup
    monkeypatch.setenv(ALLOWED_SIGNERS_ENV, str(keys.folder / "missing"))
    assert "there is no such file" in trust_from_env().setup


def test_the_worker_policy_and_the_groups_file_are_read_from_its_environment(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOWED_SIGNERS_ENV, str(keys.allowed_signers(("ana", "ana"))))
    for value, required in (("", False), ("off", False), ("1", True), ("on", True)):
        monkeypatch.setenv(REQUIRE_ENV, value)
        assert trust_from_env().required is required
    monkeypatch.setenv(GROUPS_ENV, str(keys.groups("sre-leads ana\n")))
    broken = trust_from_env()
    assert broken.verifier is None and "line 1: write `group: principal, principal`" in (
        broken.setup
    )
    groups = read_groups(keys.groups("a: x, y\n\n# note\nb: z # trailing\na: w\n"))
    assert groups == {"a": frozenset({"x", "y", "w"}), "b": frozenset({"z"})}


# -- the CLI's side: which key signs --------------------------------------------------------


async def test_the_named_key_signs_and_a_missing_one_is_an_error(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, str(keys.key("ana")))
    assert await signing.signing_key() == signing.SigningKey(path=keys.key("ana"))
    with pytest.raises(signing.SigningFailed, match="--key /nowhere/key: no such key file"):
        await signing.signing_key("/nowhere/key")


async def test_without_a_named_key_the_home_key_then_the_dev_stack_key_sign(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, stack = tmp_path / "home", tmp_path / "stack"
    (home / ".ssh").mkdir(parents=True)
    stack.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ROLLOUT_DIR", str(stack))
    monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    assert await signing.signing_key() is None
    (stack / signing.DEV_KEY).write_bytes(keys.key("dev").read_bytes())
    (stack / signing.DEV_KEY).chmod(0o600)
    assert await signing.signing_key() == signing.SigningKey(path=stack / signing.DEV_KEY)
    (home / ".ssh" / "id_ed25519").write_bytes(keys.key("ana").read_bytes())
    assert await signing.signing_key() == signing.SigningKey(path=home / ".ssh" / "id_ed25519")


async def test_a_key_held_by_ssh_agent_signs(
    trust: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(trust.key("bo"))], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)
        key = await signing.signing_key()
        assert key is not None and key.path is None and key.agent_public.startswith("ssh-ed25519")
        made = await signing.sign(text(), key)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)
    answer = await verify_command(ProofRequest(signed=made))
    assert answer.signer is not None and answer.signer.name == "bo"


# -- the dev stack trusts the local user ----------------------------------------------------


async def test_the_dev_stack_trusts_the_users_key_or_one_it_makes(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, stack = tmp_path / "home", tmp_path / "stack"
    (home / ".ssh").mkdir(parents=True)
    stack.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USER", "newcomer")
    monkeypatch.setenv("ROLLOUT_DIR", str(stack))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)
    # No key at all: one is made in the stack's folder, and `rollout` signs with it.
    trusted = write_dev_trust(stack)
    assert (stack / signing.DEV_KEY).is_file()
    monkeypatch.setenv(ALLOWED_SIGNERS_ENV, str(trusted))
    key = await signing.signing_key()
    assert key == signing.SigningKey(path=stack / signing.DEV_KEY)
    answer = await verify_command(ProofRequest(signed=await signing.sign(text(), key)))
    assert answer.signer is not None and answer.signer.name == "newcomer"
    # The user's own key, once there, is the one trusted and used.
    for suffix in ("", ".pub"):
        own_file = home / ".ssh" / f"id_ed25519{suffix}"
        own_file.write_bytes(Path(f"{keys.key('ana')}{suffix}").read_bytes())
        own_file.chmod(0o600)
    write_dev_trust(stack)
    assert trusted.read_text().count("\n") == 1
    own = await signing.signing_key()
    assert own == signing.SigningKey(path=home / ".ssh" / "id_ed25519")
    answer = await verify_command(ProofRequest(signed=await signing.sign(text(), own)))
    assert answer.signer is not None and answer.signer.fingerprint == keys.fingerprint("ana")


def test_status_tells_a_verified_sender_from_a_claimed_one() -> None:
    records = [
        CommandRecord(kind="promote", by="cab", reason="", at=NOW, accepted=False, note="no"),
        CommandRecord(
            kind="approve", by="ana", reason="", at=NOW, accepted=True, verified="SHA256:x"
        ),
    ]
    shown = text_of(command_table(status(commands=records)))
    assert "claimed cab" in shown and "verified ana (SHA256:x)" in shown


def test_a_removed_freeze_says_who_removed_it_and_why() -> None:
    freeze = Freeze(
        service="checkout",
        start=NOW,
        end=NOW + timedelta(days=1),
        reason="year end",
        id="f1a2b001",
        added_at=NOW,
    )
    verified = RemovedFreeze(freeze=freeze, by="ana", verified="SHA256:x", reason="done", at=NOW)
    assert verified.describe().endswith("removed by verified ana (SHA256:x): done")
    claimed = RemovedFreeze(freeze=freeze, by="kim", at=NOW)
    assert claimed.describe().endswith("removed by claimed kim (no reason given)")
