"""Signatures in OpenSSH's sshsig format, checked against an ``allowed_signers`` file.

The same check git makes of an SSH-signed commit: ``ssh-keygen -Y find-principals`` names
who the signing key belongs to, ``ssh-keygen -Y verify`` proves the signature is theirs for
this text and this namespace. ssh-keygen runs as a subprocess of the event loop, so a worker
that verifies never blocks its workflows.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from activities.identity.base import SignatureRefused
from client.programs import run_bounded
from plans.governance.approvals import SEE, SIGNING_NAMESPACE, Signer

SSH_KEYGEN = "ssh-keygen"
TIMEOUT_S = 10.0
FINGERPRINT = re.compile(r"\b((?:SHA256|MD5):[A-Za-z0-9+/=:]+)")


class SshSignatures:
    """Verifies sshsig signatures against one allowed_signers file."""

    def __init__(self, allowed_signers: Path, namespace: str = SIGNING_NAMESPACE) -> None:
        self.allowed_signers = allowed_signers
        self.namespace = namespace

    async def verify(self, payload: bytes, signature: str) -> Signer:
        """The signer of ``payload``, or SignatureRefused saying what is wrong and what to do."""
        if "-----BEGIN SSH SIGNATURE-----" not in signature:
            raise SignatureRefused(
                "the signature is not an SSH signature (-----BEGIN SSH SIGNATURE-----...):"
                " sign the command with `rollout` and your SSH key"
            )
        with tempfile.TemporaryDirectory(prefix="rollout-sig-") as folder:
            sig = Path(folder) / "command.sig"
            sig.write_text(signature)
            found, principals, _ = await _keygen(
                "-Y", "find-principals", "-s", str(sig), "-f", str(self.allowed_signers)
            )
            if found != 0:
                raise SignatureRefused(await self._unknown(payload, sig))
            names = [p for line in principals.splitlines() for p in line.split(",") if p]
            if not names:
                raise SignatureRefused(await self._unknown(payload, sig))
            verified, said, problem = await _keygen(
                "-Y",
                "verify",
                "-f",
                str(self.allowed_signers),
                "-I",
                names[0],
                "-n",
                self.namespace,
                "-s",
                str(sig),
                stdin=payload,
            )
        fingerprint = FINGERPRINT.search(said)
        if verified != 0 or fingerprint is None:
            reason = _last_line(problem) or "it does not verify"
            raise SignatureRefused(
                f"the signature of {names[0]} does not hold for this command ({reason}): sign"
                f" the command itself, with namespace {self.namespace!r}"
            )
        return Signer(principals=names, fingerprint=fingerprint[1])

    async def _unknown(self, payload: bytes, sig: Path) -> str:
        """Why a key the file does not list was refused, naming the key when it can."""
        checked, said, problem = await _keygen(
            "-Y", "check-novalidate", "-n", self.namespace, "-s", str(sig), stdin=payload
        )
        fingerprint = FINGERPRINT.search(said)
        if checked != 0 or fingerprint is None:
            reason = _last_line(problem) or "not an SSH signature of this command"
            return (
                f"the signature does not hold for this command ({reason}); sign it with"
                f" `rollout`, which uses namespace {self.namespace!r}"
            )
        return (
            f"signed by key {fingerprint[1]}, which the worker's allowed_signers"
            f" ({self.allowed_signers}) does not list: add a line `NAME <public key>` for it"
            f" there ({SEE})"
        )


async def _keygen(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run ssh-keygen; its exit code, standard output and standard error."""
    try:
        return await run_bounded(SSH_KEYGEN, *args, stdin=stdin, timeout_s=TIMEOUT_S)
    except FileNotFoundError:
        raise SignatureRefused(
            "the worker cannot check SSH signatures: ssh-keygen is not installed there"
            " (install openssh-client)"
        ) from None
    except TimeoutError:
        raise SignatureRefused(f"ssh-keygen took longer than {TIMEOUT_S:g}s to check") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
