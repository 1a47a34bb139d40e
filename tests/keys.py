"""Real SSH keys for the tests, made with ssh-keygen in a temporary folder, and a worker's trust."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from activities.identity import ALLOWED_SIGNERS_ENV, GROUPS_ENV, REQUIRE_ENV
from plans.governance.approvals import SIGNING_NAMESPACE


@dataclass
class Keys:
    """People with SSH keys; ``trust`` lists some of them in an allowed_signers file."""

    folder: Path
    made: dict[str, Path] = field(default_factory=dict)

    def key(self, name: str) -> Path:
        """``name``'s private key (made on first use; the public half beside it, .pub)."""
        if name not in self.made:
            path = self.folder / name
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
                check=True,
            )
            self.made[name] = path
        return self.made[name]

    def fingerprint(self, name: str) -> str:
        shown = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{self.key(name)}.pub"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return shown.split()[1]

    def allowed_signers(self, *lines: tuple[str, str]) -> Path:
        """An allowed_signers file: (principals, person whose key) per line."""
        path = self.folder / "allowed_signers"
        text = ""
        for principals, person in lines:
            kind, blob = Path(f"{self.key(person)}.pub").read_text().split()[:2]
            text += f'{principals} namespaces="{SIGNING_NAMESPACE}" {kind} {blob}\n'
        path.write_text(text)
        return path

    def groups(self, text: str) -> Path:
        path = self.folder / "groups"
        path.write_text(text)
        return path


def made_keys(tmp_path: Path) -> Keys:
    """A folder for the test's keys."""
    folder = tmp_path / "keys"
    folder.mkdir()
    return Keys(folder)


def trusting(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Keys:
    """A worker that trusts ana and bo (both sre-leads, by the groups file), not mallory."""
    monkeypatch.setenv(ALLOWED_SIGNERS_ENV, str(keys.allowed_signers(("ana", "ana"), ("bo", "bo"))))
    monkeypatch.setenv(GROUPS_ENV, str(keys.groups("# who leads\nsre-leads: ana, bo\n")))
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    keys.key("mallory")
    return keys
