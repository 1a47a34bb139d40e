"""An event for people, as data, and the message that carries it to the channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from plans.notify import Channel, EventKind
from plans.runtime.state import Verdict


class StageBrief(BaseModel):
    """A stage as a message shows it: the plan's timeline."""

    name: str
    weight: int
    bake_s: float = 0.0
    approval: bool = False


class VariantBrief(BaseModel):
    """An experiment's variant as a message shows it."""

    name: str
    share: int = Field(description="percent of the traffic it has now")
    control: bool = False
    effect: str = Field(default="", description="the primary metric against the control")
    better: bool = False
    out: str = Field(default="", description="why a guardrail took it out, if one did")


class ExperimentBrief(BaseModel):
    """What an experiment's message adds to a rollout's: the variants side by side."""

    control: str
    primary: str = Field(description="the gate whose metric picks the winner")
    max_duration_s: float = 0.0
    variants: list[VariantBrief] = Field(default_factory=list)
    variant: str = Field(default="", description="the variant the event is about, if one")


class Notice(BaseModel):
    """An event for people, as data; the activity renders it with the channel's templates.

    ``key`` names the event once for the whole rollout (its workflow id and first run, the
    event, the stage, a sequence number carried across continue-as-new): a message already
    sent under a key is never sent again, whatever retries or runs follow.
    """

    kind: EventKind
    key: str
    service: str
    version: str
    strategy: str = "canary"
    stage: str = ""
    stage_index: int = -1
    stage_count: int = 0
    weight: int = Field(default=0, description="the canary's share of traffic now, in percent")
    stages: list[StageBrief] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    reason: str = ""
    restored: list[str] = Field(default_factory=list, description="what a rollback put back")
    at: datetime | None = None
    report_url: str | None = Field(default=None, description="the run's report, when it has one")
    templates_dir: str | None = Field(default=None, description="the plan's own templates")
    experiment: ExperimentBrief | None = Field(
        default=None, description="set when an experiment tells, not a rollout"
    )


class Notification(BaseModel):
    """A message for people and the channels it goes to (whose secrets the activity reads).

    Runs recorded before channels subscribed to events send one ``channel`` and ``text``
    only; since then ``channels`` and ``notice`` come too, and ``text`` stays the one line
    the plan's ``webhook_url_env`` has always received.
    """

    channel: Channel | None = None
    text: str
    service: str = ""
    state: str = ""
    channels: list[Channel] = Field(default_factory=list)
    notice: Notice | None = None

    @classmethod
    def to(
        cls, channels: list[Channel], text: str, service: str, state: str, notice: Notice
    ) -> Notification:
        """``notice`` for these channels (the first also as ``channel``, as runs recorded
        before channels had models read it), with its one line ``text``."""
        return cls(
            channel=channels[0],
            channels=channels,
            text=text,
            service=service,
            state=state,
            notice=notice,
        )

    def targets(self) -> list[Channel]:
        """Every channel this message goes to."""
        if self.channels:
            return list(self.channels)
        return [self.channel] if self.channel is not None else []

    @model_validator(mode="before")
    @classmethod
    def _webhook_variable(cls, data: Any) -> Any:
        # Notifications scheduled before channels had models name the webhook's variable.
        if isinstance(data, dict) and "webhook_url_env" in data and "channel" not in data:
            data = dict(data)
            data["channel"] = {"kind": "webhook", "url_env": data.pop("webhook_url_env")}
        return data
