"""Who may move a rollout forward: signed commands, verified signers, and the pure decisions.

Stopping (pause, rollback, abort) is open to everyone. Going forward (approve, promote,
resume, override, retry, removing a freeze) needs a person the worker can verify when a plan
names ``approvers`` or the worker requires it for every plan. The operator's CLI signs a
``CommandClaim`` with an SSH key (OpenSSH's sshsig format, as git signs commits); the worker
checks the signature against key material it holds (``activities.identity``), and the
workflow applies the rules below to what the worker found. Nothing here does I/O, so the
workflow takes these decisions deterministically and tests take them without Temporal.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

# ssh-keygen -Y sign -n NAMESPACE: a signature made for this product verifies for nothing
# else (a git commit signature has namespace "git"), and the reverse.
SIGNING_NAMESPACE = "durable-rollouts"
MAX_SKEW = timedelta(minutes=5)
MAX_NONCES_KEPT = 500
# Where a refusal sends people: the docs page that shows the setup.
SEE = 'see docs/governance.md, "Approvers"'

FORWARD = frozenset({"approve", "promote", "resume", "override", "retry"})
# The commands ``approvals`` counts distinct people for; the others need one verified person.
COUNTED = frozenset({"approve", "promote"})
START = "start"
FREEZE_REMOVE = "freeze-remove"

PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


def check_principal(value: str) -> str:
    """``value`` if it can name a principal or a group of allowed_signers, else a ValueError."""
    if not PRINCIPAL.fullmatch(value):
        raise ValueError(
            f"{value[:60]!r} is not a principal or group name: use 1-128 letters, digits,"
            " '_', '.', '@', '+' or '-', as in the worker's allowed_signers file"
        )
    return value


Principal = Annotated[str, AfterValidator(check_principal)]


class ApprovalRule(BaseModel):
    """A plan's rule for going forward: who (``approvers``), how many, and not the starter."""

    model_config = ConfigDict(defer_build=True)

    approvers: list[Principal] = Field(default_factory=list)
    approvals: int = 1
    not_by_starter: bool = False

    @property
    def named(self) -> bool:
        return bool(self.approvers)

    def listed(self) -> str:
        return "[" + ", ".join(self.approvers) + "]"


class CommandClaim(BaseModel):
    """What an operator signs: the command, where it goes, when, and a nonce used once.

    ``run_id`` is the first run of the rollout (it stays the same across continue-as-new),
    so a signature made for one rollout is refused by any other; the nonce makes it good
    for one use, the time for five minutes.
    """

    model_config = ConfigDict(defer_build=True)

    v: int = 1
    kind: str = Field(max_length=40)
    workflow_id: str = Field(max_length=300)
    run_id: str = Field(default="", max_length=100)
    target: str = Field(default="", max_length=100, description="a release's target, if named")
    subject: str = Field(default="", max_length=200, description="e.g. the freeze removed")
    by: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=2000)
    at: datetime
    nonce: str = Field(min_length=16, max_length=64)

    def text(self) -> str:
        """The exact text that is signed: sorted keys, no spaces, one line."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class SignedCommand(BaseModel):
    """A claim's text and its armored sshsig signature, as the CLI sends them."""

    model_config = ConfigDict(defer_build=True)

    payload: str = Field(max_length=4000)
    signature: str = Field(max_length=8000)

    def claim(self) -> CommandClaim | None:
        """The signed claim, or None when the payload is not one."""
        try:
            return CommandClaim.model_validate_json(self.payload)
        except ValidationError:
            return None


class Signer(BaseModel):
    """A person the worker verified: their principals (the first names them) and key."""

    model_config = ConfigDict(defer_build=True)

    principals: list[str] = Field(min_length=1)
    fingerprint: str
    groups: list[str] = Field(default_factory=list, description="from the worker's groups file")

    @property
    def name(self) -> str:
        return self.principals[0]

    def describe(self) -> str:
        return who(self.name, self.fingerprint)

    def one_of(self, names: list[str]) -> bool:
        """Whether any of the signer's principals or groups is among ``names``."""
        return bool(set(names) & {*self.principals, *self.groups})


class ProofRequest(BaseModel):
    """Ask the worker: is a signature required, is there one, and whose is it?"""

    model_config = ConfigDict(defer_build=True)

    signed: SignedCommand | None = None


class ProofAnswer(BaseModel):
    """What the worker found: its trust and policy, and the signer or why there is none."""

    model_config = ConfigDict(defer_build=True)

    trusted: bool = Field(description="the worker has a trust file it could read")
    required: bool = Field(default=False, description="the worker requires signed commands")
    signer: Signer | None = None
    problem: str = Field(default="", description="why the signature was not accepted")
    setup: str = Field(default="", description="how to give the worker a trust file")


class Origin(BaseModel):
    """Where a claim may come from: a workflow and its runs, and the target it stands for."""

    model_config = ConfigDict(defer_build=True)

    workflow_id: str
    run_ids: list[str]
    targets: list[str] = Field(
        default=[""], description="the targets a claim may name ('' for none: the whole rollout)"
    )


class ParentRelease(BaseModel):
    """The release a target's rollout runs under, as the release started it.

    A rollout trusts this only when Temporal says that release is its parent: then commands
    the release verified and forwarded (signed for the release, naming this target) are
    taken, and the release's verified starter is this rollout's starter too.
    """

    model_config = ConfigDict(defer_build=True)

    workflow_id: str
    run_id: str = Field(description="the release's first run, which its signed commands name")
    target: str
    starter: Signer | None = None


class ApprovalLedger(BaseModel):
    """What the workflow keeps of signed commands, carried across continue-as-new."""

    model_config = ConfigDict(defer_build=True)

    nonces: dict[str, datetime] = Field(
        default_factory=dict, description="nonces used, with their claims' times"
    )
    approved_by: dict[str, list[str]] = Field(
        default_factory=dict, description="who approved so far, by what they approved"
    )
    starter: Signer | None = Field(default=None, description="who started it, verified")
    start_claimed: bool = Field(default=False, description="a start claim was judged")

    def remember(self, claim: CommandClaim, now: datetime) -> None:
        """Use the claim's nonce up; forget nonces whose claims can no longer be fresh."""
        self.nonces[claim.nonce] = claim.at
        stale = now - 2 * MAX_SKEW
        kept = sorted(((at, n) for n, at in self.nonces.items() if at >= stale), reverse=True)
        self.nonces = {n: at for at, n in sorted(kept[:MAX_NONCES_KEPT])}


class Judgement(BaseModel):
    """A forward command judged: refused (and why), or taken by a verified or claimed person."""

    model_config = ConfigDict(defer_build=True)

    refusal: str = ""
    signer: Signer | None = None
    claim: CommandClaim | None = None


def required(rule: ApprovalRule, answer: ProofAnswer | None) -> bool:
    """A verified person is needed: the plan names approvers or the worker says so."""
    return rule.named or (answer is not None and answer.required)


def needs_signature(kind: str, rule: ApprovalRule, how: str, what: str = "this rollout") -> str:
    """The refusal of an unsigned forward command, with the way to do it right."""
    whom = f"one of {rule.listed()}" if rule.named else "a person the worker knows"
    noun = "approval" if kind == "approve" else f"{kind} command"
    return (
        f"{kind}: {what} needs a signed {noun} from {whom}; run {how} with your SSH"
        f" key configured ({SEE})"
    )


def who(by: str, verified: str) -> str:
    """A sender as the audit shows them: verified with their key's fingerprint, or claimed."""
    return f"verified {by} ({verified})" if verified else f"claimed {by}"


def judge(
    rule: ApprovalRule,
    answer: ProofAnswer,
    signed: SignedCommand | None,
    *,
    kind: str,
    origins: list[Origin],
    now: datetime,
    ledger: ApprovalLedger,
    how: str,
    what: str = "this rollout",
) -> Judgement:
    """Whether a command goes forward on this signature, under the plan's rule.

    Unsigned: taken as claimed unless a signature is required. Signed: the signature must
    be good, name this command, this rollout (or an ``origins`` workflow, such as the release
    whose child this is), a time within MAX_SKEW of ``now`` and an unused nonce; the signer
    must be one of the approvers the plan names, and not its verified starter when
    ``not_by_starter`` is set. A bad signature is refused even where none is required.
    """
    needed = required(rule, answer)
    if signed is None:
        return Judgement(refusal=needs_signature(kind, rule, how, what) if needed else "")
    claim = signed.claim()
    if claim is None:
        return Judgement(refusal=f"{kind}: the signed text is not a command; sign with `{how}`")
    if not answer.trusted:
        if needed:
            return Judgement(refusal=f"{kind}: the worker cannot verify signatures: {answer.setup}")
        return Judgement(claim=claim)
    if answer.problem or answer.signer is None:
        return Judgement(refusal=f"{kind}: {answer.problem or 'the signature is not good'}")
    why = claim_refusal(claim, kind=kind, origins=origins, now=now, ledger=ledger, how=how)
    if not why:
        why = signer_refusal(rule, answer.signer, kind, ledger.starter)
    return Judgement(refusal=why, signer=answer.signer, claim=claim)


def claim_refusal(
    claim: CommandClaim,
    *,
    kind: str,
    origins: list[Origin],
    now: datetime,
    ledger: ApprovalLedger,
    how: str,
) -> str:
    """Why a verified claim does not fit this command here and now, or ''."""
    if claim.kind != kind:
        return f"{kind}: the signature is for {claim.kind!r}, not {kind!r}"
    origin = next((o for o in origins if o.workflow_id == claim.workflow_id), None)
    if origin is None:
        return (
            f"{kind}: the signature is for {claim.workflow_id}, not this rollout;"
            f" sign it for this one: {how}"
        )
    if claim.run_id not in origin.run_ids:
        return (
            f"{kind}: the signature is for another run of {claim.workflow_id} ({claim.run_id});"
            f" sign it again for this one: {how}"
        )
    if claim.target not in origin.targets:
        named = f"target {claim.target!r}" if claim.target else "no target"
        return f"{kind}: the signature names {named}, not this rollout's target"
    if abs(claim.at - now) > MAX_SKEW:
        return (
            f"{kind}: the signature was made at {claim.at:%Y-%m-%d %H:%M:%S} UTC, more than"
            f" {int(MAX_SKEW.total_seconds() // 60)} minutes from the worker's time: sign it"
            " again (and check the clock of the machine that signs)"
        )
    if claim.nonce in ledger.nonces:
        return f"{kind}: this signed command was used already; sign a new one: {how}"
    return ""


def signer_refusal(rule: ApprovalRule, signer: Signer, kind: str, starter: Signer | None) -> str:
    """Why this verified person may not send this command under the rule, or ''."""
    if rule.named and not signer.one_of(rule.approvers):
        return (
            f"{kind}: {signer.describe()} is not one of the approvers {rule.listed()};"
            " ask one of them"
        )
    if rule.not_by_starter and kind in FORWARD:
        if starter is None:
            return (
                f"{kind}: not_by_starter is set and nobody verified started this rollout, so"
                " no approver can be told apart from its starter; start it again with"
                f" `rollout start` and your SSH key configured ({SEE})"
            )
        if signer.name == starter.name:
            return (
                f"{kind}: {signer.name} started this rollout and not_by_starter is set: another"
                f" approver of {rule.listed()} must send it"
            )
    return ""


def count_approval(
    rule: ApprovalRule, ledger: ApprovalLedger, key: str, signer: Signer | None
) -> tuple[bool, str]:
    """Count a verified person's approval of ``key``; whether enough people have, and a note.

    ``approvals: N`` asks for N distinct verified people; a claimed (unverified) name never
    counts towards more than one.
    """
    if rule.approvals <= 1:
        return True, ""
    if signer is None:
        return False, f"approvals: {rule.approvals} asks for verified people; this one is claimed"
    people = ledger.approved_by.setdefault(key, [])
    if signer.name in people:
        return False, f"{signer.name} approved already; {rule.approvals - len(people)} more needed"
    people.append(signer.name)
    if len(people) >= rule.approvals:
        return True, f"approved by {', '.join(people)}"
    return False, (
        f"{len(people)} of {rule.approvals} approvals ({', '.join(people)}); one more from"
        f" {rule.listed()} is needed"
    )
