"""The dev stack's trust: the local user's SSH keys in an allowed_signers file for its worker.

So that a newcomer's first signed approval works on the dev stack: the keys `rollout` signs
with (ssh-agent's, ~/.ssh/id_ed25519) are listed under the user's name; a user with none
gets a new key in the stack's folder, which `rollout` then finds by itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from client.signing import DEV_KEY, user_name
from devstack.processes import StackError
from plans.governance.approvals import PRINCIPAL, SIGNING_NAMESPACE

ALLOWED_SIGNERS = "allowed_signers"
TIMEOUT_S = 10.0


def write_dev_trust(folder: Path) -> Path:
    """Write ``folder``/allowed_signers naming the local user by their keys; return its path."""
    name = user_name()
    principal = name if PRINCIPAL.fullmatch(name) else "developer"
    keys = _agent_keys() + _home_keys()
    if not keys:
        keys = [_made_key(folder, principal)]
    lines = []
    for key in dict.fromkeys(keys):
        kind, blob = key.split()[:2]
        lines.append(f'{principal} namespaces="{SIGNING_NAMESPACE}" {kind} {blob}\n')
    path = folder / ALLOWED_SIGNERS
    path.write_text("".join(lines))
    return path


def _agent_keys() -> list[str]:
    """The public keys a running ssh-agent holds, as `ssh-add -L` prints them."""
    try:
        shown = subprocess.run(
            ["ssh-add", "-L"], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if shown.returncode != 0:
        return []
    return [line for line in shown.stdout.splitlines() if line.startswith(("ssh-", "ecdsa-"))]


def _home_keys() -> list[str]:
    """~/.ssh/id_ed25519.pub, when its private half is there to sign with."""
    private = Path.home() / ".ssh" / "id_ed25519"
    public = private.with_suffix(".pub")
    if private.is_file() and public.is_file():
        return [public.read_text().strip()]
    return []


def _made_key(folder: Path, principal: str) -> str:
    """A new ed25519 key without a passphrase in the stack's folder: for this stack only."""
    private = folder / DEV_KEY
    comment = f"{principal}@rollout-dev"
    if not private.is_file():
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
                capture_output=True,
                check=True,
                timeout=TIMEOUT_S,
            )
        except FileNotFoundError:
            raise StackError(
                "ssh-keygen is not installed: install openssh-client (the dev stack makes a"
                " key for signed approvals with it)"
            ) from None
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise StackError(f"could not make a signing key in {folder}: {error}") from None
    return Path(f"{private}.pub").read_text().strip()
