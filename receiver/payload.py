"""Alertmanager's webhook body (payload version "4"), read and checked before anything acts on it.

Alertmanager POSTs one JSON object per notification of an alert group:
``version, groupKey, truncatedAlerts, status, receiver, groupLabels, commonLabels,
commonAnnotations, externalURL, alerts[...]``, each alert with ``status, labels,
annotations, startsAt, endsAt, generatorURL, fingerprint``. Fields Alertmanager may add
later are ignored; a field it always sends that is missing or of the wrong type makes the
whole body malformed, with the first few problems named.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from plans.errors import RolloutError
from plans.text import clip

VERSION = "4"
# How many of a body's problems a 400 names, and how long each may be.
PROBLEMS_SHOWN = 5
PROBLEM_CHARS = 200


class MalformedNotification(RolloutError):
    """A body that is not an Alertmanager notification; the message says what is wrong."""


class _Lenient(BaseModel):
    # Alertmanager grows its payload from time to time; what we do not read, we do not check.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Alert(_Lenient):
    """One alert of the group, firing or resolved."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(
        default="", description="Alertmanager's hash of the labels; computed here when absent"
    )

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> str:
        """What makes a repeated notification of this alert the same one: labels and start."""
        fingerprint = self.fingerprint or _labels_hash(self.labels)
        return f"{fingerprint}@{self.starts_at.isoformat()}"


class AlertGroup(_Lenient):
    """One webhook call: a group of alerts that share the group's labels."""

    version: str
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert]


def parse_notification(body: bytes) -> AlertGroup:
    """The notification in ``body``, or MalformedNotification saying what to fix."""
    try:
        data: Any = json.loads(body)
    except UnicodeDecodeError:
        raise MalformedNotification("the body is not UTF-8 text") from None
    except ValueError as error:
        raise MalformedNotification(f"the body is not JSON: {clip(str(error), 200)}") from None
    except RecursionError:
        raise MalformedNotification("the body's JSON is nested too deep") from None
    if not isinstance(data, dict):
        raise MalformedNotification(
            f"the body is a JSON {type(data).__name__}, not an object: Alertmanager sends"
            " an object with version, status and alerts"
        )
    version = data.get("version")
    if version != VERSION:
        raise MalformedNotification(
            f"version is {json.dumps(version)[:40]}, not {json.dumps(VERSION)}: this receiver"
            " reads Alertmanager's webhook payload version 4 (Alertmanager 0.x sends it)"
        )
    try:
        return AlertGroup.model_validate(data)
    except ValidationError as error:
        raise MalformedNotification(_problems(error)) from None
    except (ValueError, OverflowError) as error:  # e.g. a number too big for a datetime
        raise MalformedNotification(f"a value cannot be read: {clip(str(error), 200)}") from None


def _problems(error: ValidationError) -> str:
    found = error.errors(include_url=False, include_input=False)
    lines = []
    for problem in found[:PROBLEMS_SHOWN]:
        where = ".".join(str(part) for part in problem["loc"]) or "the body"
        lines.append(clip(f"{where}: {problem['msg']}", PROBLEM_CHARS))
    more = len(found) - PROBLEMS_SHOWN
    if more > 0:
        lines.append(f"and {more} more")
    return "not an Alertmanager notification: " + "; ".join(lines)


def _labels_hash(labels: dict[str, str]) -> str:
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
