"""Hook signatures in the Standard Webhooks form, made by the worker and checked by receivers.

A signed hook call carries ``webhook-id`` (its idempotency key, the same on every retry),
``webhook-timestamp`` (when this attempt was signed) and ``webhook-signature``: one
``v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`` per secret, space separated, so
that a receiver holding either key verifies during a rotation. Signing the id and the time as
well as the body is what lets a receiver refuse a captured call sent again later.

A hook's secret variable holds one secret, or several ``whsec_<base64>`` secrets separated by
spaces or commas. A ``whsec_`` secret's key is its decoded bytes; any other value is one
secret whose UTF-8 bytes are the key, as the body-only ``X-Rollout-Signature`` has always
used it (deprecated: sent for one more release beside the new headers).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURES_HEADER = "webhook-signature"
LEGACY_SIGNATURE_HEADER = "X-Rollout-Signature"
SIGNED_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURES_HEADER, LEGACY_SIGNATURE_HEADER)
SECRET_PREFIX = "whsec_"
# The specification's floor for a random HMAC key; shorter ones are refused, not used.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
DEFAULT_TOLERANCE = timedelta(minutes=5)
_SEPARATORS = re.compile(r"[\s,]+")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
NEW_SECRET_HINT = (
    "make one with: python3 -c 'import base64, os;"
    ' print("whsec_" + base64.b64encode(os.urandom(32)).decode())\''
)


class HeaderLookup(Protocol):
    """What a web framework's request headers offer: ``get`` by name (http.server's too)."""

    def get(self, name: str, /) -> object: ...


def signing_secrets(value: str) -> list[str]:
    """The secrets a hook's secret variable holds, in order (the first signs the old header)."""
    parts = [part for part in _SEPARATORS.split(value) if part]
    if any(part.startswith(SECRET_PREFIX) for part in parts):
        return parts
    # No whsec_ secret: one secret, whole, exactly as the variable was always read.
    return [value] if value else []


def secret_key(secret: str) -> bytes:
    """The HMAC key of one secret; ValueError (naming no secret) when a ``whsec_`` one is bad."""
    if not secret.startswith(SECRET_PREFIX):
        if not secret:
            raise ValueError("a secret is empty")
        try:
            return secret.encode()
        except UnicodeEncodeError:  # bytes the environment could not decode; none is shown
            raise ValueError(f"a secret is not UTF-8 text; {NEW_SECRET_HINT}") from None
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        why = f"a whsec_ secret is not base64 after its prefix; {NEW_SECRET_HINT}"
        raise ValueError(why) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"a whsec_ secret holds {len(key)} bytes, not {MIN_KEY_BYTES} to {MAX_KEY_BYTES};"
            f" {NEW_SECRET_HINT}"
        )
    return key


def message_id(idempotency_key: str) -> str:
    """The ``webhook-id`` of a call: its idempotency key, with no '.' (the signed separator)."""
    # Reversible, so two keys never share an id; keys without '.' or '%' are sent unchanged.
    return idempotency_key.replace("%", "%25").replace(".", "%2E")


def sign(body: bytes, secret: str) -> str:
    """The deprecated ``X-Rollout-Signature`` value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _v1(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(
    msg_id: str, body: bytes, secrets: Sequence[str], at: datetime
) -> dict[str, str]:
    """The headers that sign ``body`` as sent at ``at``: one v1 signature per secret."""
    if not secrets:
        raise ValueError("no secret to sign with")
    keys = [secret_key(secret) for secret in secrets]
    timestamp = str(int(at.timestamp()))
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURES_HEADER: " ".join(_v1(key, msg_id, timestamp, body) for key in keys),
        LEGACY_SIGNATURE_HEADER: sign(body, secrets[0]),
    }


def _header(headers: Mapping[str, object] | HeaderLookup, name: str) -> str | None:
    """One header's value, its name matched in any case; None when absent or not text."""
    if isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    else:
        value = headers.get(name)
    return value.strip() if isinstance(value, str) else None


def _keys(secret: str | Sequence[str]) -> list[tuple[str, bytes]]:
    """Each usable secret with its key; a malformed one is skipped, so that a check never raises."""
    if isinstance(secret, str):
        secrets = signing_secrets(secret)
    elif isinstance(secret, list | tuple):
        secrets = list(secret)
    else:
        return []
    usable = []
    for one in secrets:
        try:
            usable.append((one, secret_key(one)))
        except (ValueError, TypeError, AttributeError):
            continue
    return usable


def _same(expected: str, given: str) -> bool:
    """Constant-time equality that is simply false for text no signature can be."""
    return given.isascii() and hmac.compare_digest(expected.encode(), given.encode())


def verify_signature(
    body: bytes,
    signature: Mapping[str, object] | HeaderLookup | str | None,
    secret: str | Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> bool:
    """A receiver's check of a hook call: True only for a fresh, matching signature; never raises.

    Pass the request's headers to check ``webhook-id``, ``webhook-timestamp`` (within
    ``tolerance`` of ``now``) and ``webhook-signature`` against any of ``secret`` (one
    secret, a list, or a variable's value with several). Passing the deprecated
    ``X-Rollout-Signature`` value itself checks the body alone, as before.
    """
    if not isinstance(body, bytes | bytearray):
        return False
    keys = _keys(secret)
    if signature is None or isinstance(signature, str):
        given = (signature or "").strip()
        return any(_same(sign(bytes(body), one), given) for one, _ in keys)
    try:
        msg_id = _header(signature, ID_HEADER)
        timestamp = _header(signature, TIMESTAMP_HEADER)
        signatures = _header(signature, SIGNATURES_HEADER)
    except (TypeError, ValueError, AttributeError):  # a headers object that is not one
        return False
    if not msg_id or not msg_id.isascii() or not timestamp or not signatures:
        return False
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    clock = (now or datetime.now(UTC)).timestamp()
    if abs(clock - int(timestamp)) > tolerance.total_seconds():
        return False
    offered = signatures.split()
    for _, key in keys:
        expected = _v1(key, msg_id, timestamp, bytes(body))
        if any(_same(expected, one) for one in offered):
            return True
    return False
