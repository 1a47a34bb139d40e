"""Who sent a command: the worker's trust (read from its environment, never from a plan).

One ``Verifier`` Protocol (``base``), one module per way of verifying: ``sshsig`` checks SSH
signatures against an allowed_signers file, as git does for signed commits. SSH keys were
chosen over OIDC tokens checked against a JWKS because they need no identity provider, people
have them already, and git's own tooling makes and checks them; a JWT verifier would be one
more module here and one more branch in ``verifier_from_env``.

The worker's environment says what it trusts, read at each check (a changed file counts at
once): ``ROLLOUT_ALLOWED_SIGNERS`` (the allowed_signers file), ``ROLLOUT_APPROVER_GROUPS``
(optional: lines ``group: principal, principal``) and ``ROLLOUT_REQUIRE_SIGNED`` (on: every
plan's forward commands need a verified person, not only plans that name approvers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from temporalio import activity

from activities.identity.base import SignatureRefused, Verifier
from activities.identity.sshsig import SshSignatures
from plans.files import UnreadableFile, read_small_text
from plans.governance.approvals import PRINCIPAL, SEE, ProofAnswer, ProofRequest

ALLOWED_SIGNERS_ENV = "ROLLOUT_ALLOWED_SIGNERS"
GROUPS_ENV = "ROLLOUT_APPROVER_GROUPS"
REQUIRE_ENV = "ROLLOUT_REQUIRE_SIGNED"
VERIFY_COMMAND = "verify_command"
OFF = frozenset({"", "0", "false", "no", "off"})
MAX_GROUPS_BYTES = 1_000_000

SETUP = (
    f"set {ALLOWED_SIGNERS_ENV} on the worker to an allowed_signers file (lines like"
    " `ana ssh-ed25519 AAAA...`, one per person's public key); `rollout dev up` makes one for"
    f" you on the dev stack ({SEE})"
)


@dataclass(frozen=True)
class Trust:
    """What the worker trusts now: a verifier (or why none), the groups, the policy."""

    verifier: Verifier | None
    setup: str = ""
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    required: bool = False


def trust_from_env(environ: Mapping[str, str] = os.environ) -> Trust:
    """The worker's trust as its environment describes it."""
    required = environ.get(REQUIRE_ENV, "").strip().lower() not in OFF
    verifier = verifier_from_env(environ)
    if isinstance(verifier, str):
        return Trust(verifier=None, setup=verifier, required=required)
    groups_file = environ.get(GROUPS_ENV, "").strip()
    try:
        groups = read_groups(Path(groups_file)) if groups_file else {}
    except ValueError as error:
        return Trust(verifier=None, setup=f"{GROUPS_ENV}: {error}", required=required)
    return Trust(verifier=verifier, groups=groups, required=required)


def verifier_from_env(environ: Mapping[str, str]) -> Verifier | str:
    """The verifier the environment configures, or what is missing and how to set it up."""
    path = environ.get(ALLOWED_SIGNERS_ENV, "").strip()
    if not path:
        return f"the worker has no allowed_signers file: {SETUP}"
    if not Path(path).is_file():
        return f"{ALLOWED_SIGNERS_ENV}={path}: there is no such file; {SETUP}"
    return SshSignatures(Path(path))


def read_groups(path: Path) -> dict[str, frozenset[str]]:
    """Groups by name from a file of ``group: principal, principal`` lines (``#`` comments)."""
    try:
        text = read_small_text(
            path, MAX_GROUPS_BYTES, f"{path} is larger than {MAX_GROUPS_BYTES:,} bytes"
        )
    except UnreadableFile as error:
        raise ValueError(str(error)) from None
    groups: dict[str, frozenset[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, rest = line.partition(":")
        members = [m for m in rest.replace(",", " ").split() if m]
        bad = [n for n in (name.strip(), *members) if not PRINCIPAL.fullmatch(n)]
        if not colon or bad:
            raise ValueError(
                f"{path} line {number}: write `group: principal, principal` with names of"
                " letters, digits, '_', '.', '@', '+' or '-'"
            )
        groups[name.strip()] = groups.get(name.strip(), frozenset()) | frozenset(members)
    return groups


@activity.defn(name=VERIFY_COMMAND)
async def verify_command(request: ProofRequest) -> ProofAnswer:
    """Say whether the worker requires signatures, and whose this one is (or why not)."""
    trust = trust_from_env()
    answer = ProofAnswer(
        trusted=trust.verifier is not None, required=trust.required, setup=trust.setup
    )
    if request.signed is None or trust.verifier is None:
        return answer
    signed = request.signed
    try:
        signer = await trust.verifier.verify(signed.payload.encode(), signed.signature)
    except SignatureRefused as refused:
        answer.problem = str(refused)
        return answer
    names = set(signer.principals)
    signer.groups = sorted(g for g, members in trust.groups.items() if names & members)
    answer.signer = signer
    return answer


__all__ = [
    "ALLOWED_SIGNERS_ENV",
    "GROUPS_ENV",
    "REQUIRE_ENV",
    "SignatureRefused",
    "SshSignatures",
    "Trust",
    "Verifier",
    "read_groups",
    "trust_from_env",
    "verify_command",
]
