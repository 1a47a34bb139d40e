"""Signing operator commands with the operator's SSH key (OpenSSH's sshsig format).

The key is the one given (``--key`` or ``ROLLOUT_SIGNING_KEY``), else the first key of a
running ssh-agent, else ``~/.ssh/id_ed25519``, else the key ``rollout dev up`` made in the dev
stack's folder for a user who had none. ``ssh-keygen -Y sign`` signs the command's
``CommandClaim`` text; the worker checks it against its allowed_signers file.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionDescription, WorkflowHandle

from client.connection import stack_dir
from client.connection import user_name as user_name
from client.programs import run_bounded
from plans import OperatorCommand, RolloutError
from plans.governance.approvals import (
    FORWARD,
    SIGNING_NAMESPACE,
    START,
    CommandClaim,
    SignedCommand,
)

SIGNING_KEY_ENV = "ROLLOUT_SIGNING_KEY"
# The dev stack makes this key in its folder for a user who has none (.pub beside it).
DEV_KEY = "signing_key"
TIMEOUT_S = 30.0


class SigningFailed(RolloutError):
    """The command could not be signed; the message says why and what to do."""


@dataclass(frozen=True)
class SigningKey:
    """A private key file, or a key an ssh-agent holds (as `ssh-add -L` prints it)."""

    path: Path | None = None
    agent_public: str = ""

    def describe(self) -> str:
        return str(self.path) if self.path is not None else "the ssh-agent's first key"


def default_key() -> Path | None:
    """The key file that signs when none is named: ~/.ssh/id_ed25519, else the dev stack's."""
    for path in (Path.home() / ".ssh" / "id_ed25519", stack_dir() / DEV_KEY):
        if path.is_file():
            return path
    return None


async def signing_key(explicit: str | None = None) -> SigningKey | None:
    """The key to sign with, or None when the operator has none."""
    named = explicit or os.environ.get(SIGNING_KEY_ENV, "")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--key" if explicit else SIGNING_KEY_ENV
            raise SigningFailed(f"{source} {named}: no such key file; name your SSH private key")
        return SigningKey(path=path)
    public = await _agent_key()
    if public:
        return SigningKey(agent_public=public)
    found = default_key()
    return SigningKey(path=found) if found is not None else None


async def _agent_key() -> str:
    """The first key a running ssh-agent holds, or '' when there is no agent or no key."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return ""
    try:
        code, out, _ = await _run("ssh-add", "-L")
    except SigningFailed:
        return ""
    first = next((line for line in out.splitlines() if line.startswith(("ssh-", "ecdsa-"))), "")
    return first if code == 0 else ""


def claim(
    kind: str,
    workflow_id: str,
    run_id: str,
    *,
    by: str = "",
    reason: str = "",
    target: str = "",
    subject: str = "",
) -> CommandClaim:
    """A command to sign: for this workflow's run, now, with a fresh nonce."""
    return CommandClaim(
        kind=kind,
        workflow_id=workflow_id,
        run_id=run_id,
        target=target,
        subject=subject,
        by=by,
        reason=reason,
        at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )


async def sign(text: CommandClaim, key: SigningKey) -> SignedCommand:
    """The claim signed with ``key`` by ssh-keygen, or SigningFailed saying what went wrong."""
    payload = text.text()
    with tempfile.TemporaryDirectory(prefix="rollout-sign-") as folder:
        # ssh-keygen signs with an agent's key when it is given the public half as a file.
        path = key.path or Path(folder) / "agent_key.pub"
        if key.path is None:
            path.write_text(key.agent_public + "\n")
        code, signature, problem = await _run(
            "ssh-keygen",
            "-Y",
            "sign",
            "-n",
            SIGNING_NAMESPACE,
            "-f",
            str(path),
            stdin=payload.encode(),
        )
    if code != 0 or "BEGIN SSH SIGNATURE" not in signature:
        said = " ".join(problem.split())[-300:] or f"ssh-keygen exited {code}"
        raise SigningFailed(
            f"could not sign the {text.kind} command with {key.describe()}: {said}. Give a key"
            " without a"
            f" passphrase, or add it to ssh-agent (ssh-add), or name another with --key or"
            f" {SIGNING_KEY_ENV}"
        )
    return SignedCommand(payload=payload, signature=signature)


async def maybe_sign(text: CommandClaim, explicit: str | None = None) -> SignedCommand | None:
    """The claim signed with the operator's key, or None when they have no key at all."""
    key = await signing_key(explicit)
    return None if key is None else await sign(text, key)


async def _run(*argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    try:
        return await run_bounded(*argv, stdin=stdin, timeout_s=TIMEOUT_S)
    except FileNotFoundError:
        raise SigningFailed(
            f"{argv[0]} is not installed: install openssh-client to sign commands"
        ) from None
    except TimeoutError:
        raise SigningFailed(f"{argv[0]} did not answer within {TIMEOUT_S:g}s") from None


def first_run_id(description: WorkflowExecutionDescription) -> str:
    """The run a rollout started with (signed commands name it), else the current one."""
    info = description.raw_description.workflow_execution_info
    return info.first_run_id or description.run_id or ""


async def signed(
    command: OperatorCommand,
    description: WorkflowExecutionDescription,
    key: str | None = None,
    target: str = "",
) -> tuple[OperatorCommand, str]:
    """A forward command signed for this workflow's run when the operator has a key.

    A key found by itself that cannot sign (a passphrase and no ssh-agent, say) leaves the
    command unsigned, since the plan may need no signature; the second value then says why,
    for a refusal to quote. A key named with ``key`` or ROLLOUT_SIGNING_KEY must sign.
    """
    if command.kind.value not in FORWARD or command.signed is not None:
        return command, ""
    text = claim(
        command.kind.value,
        description.id,
        first_run_id(description),
        by=command.by,
        reason=command.reason,
        target=target,
        subject=command.variant,
    )
    try:
        signature = await maybe_sign(text, key)
    except SigningFailed as failed:
        if key or os.environ.get(SIGNING_KEY_ENV):
            raise
        return command, f"it went unsigned: {failed}"
    if signature is None:
        return command, ""
    return command.model_copy(update={"signed": signature}), ""


async def claim_start(handle: WorkflowHandle[Any, Any], key: str | None) -> str:
    """Tell a new rollout (or release), signed, who started it; a note when that failed."""
    text = claim(START, handle.id, handle.result_run_id or "", by=user_name())
    try:
        signature = await maybe_sign(text, key)
    except SigningFailed as failed:
        signature, why = None, str(failed)
    else:
        why = "no SSH key was found to sign with"
    if signature is None:
        return (
            f"note: {why}, so nobody verified started {handle.id}; where the plan sets"
            " not_by_starter, its forward commands are refused until it is started signed"
        )
    await handle.signal("started_by", signature)
    return ""
