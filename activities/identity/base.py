"""The seam every way of verifying a person goes through, and its one error."""

from __future__ import annotations

from typing import Protocol

from plans.governance.approvals import Signer


class SignatureRefused(Exception):
    """The signature is not accepted; the message says why and what to do."""


class Verifier(Protocol):
    """Tells who signed a command's text, from key material the worker holds."""

    async def verify(self, payload: bytes, signature: str) -> Signer:
        """The signer, or SignatureRefused saying why not."""
        ...
