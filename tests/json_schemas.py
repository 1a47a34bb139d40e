"""The JSON Schemas of `rollout ... --json` kept in docs/schemas/, and checking output against
them (the unit tests offline, the integration tests on a real stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "docs" / "schemas"


def kept(name: str) -> dict[str, Any]:
    """The schema of ``name`` as kept in the repository."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return schema


def check(name: str, text: str) -> dict[str, Any]:
    """The one JSON object ``text`` holds, checked against ``name``'s kept schema."""
    value = json.loads(text)
    assert isinstance(value, dict), text[:200]
    jsonschema.validate(value, kept(name), cls=jsonschema.Draft202012Validator)
    return value


def check_lines(name: str, text: str) -> list[dict[str, Any]]:
    """Each line of ``text`` (JSON Lines), checked against ``name``'s kept schema."""
    return [check(name, line) for line in text.splitlines() if line.strip()]
