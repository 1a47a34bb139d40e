"""Where a rollout tells people about itself: the plan's ``notify`` section and its channels.

A channel names the environment variable that holds its URL (a secret: whoever has a
webhook's URL can post to it); the worker reads the variable, so only the name travels in
the workflow's history. Each channel subscribes to events and a minimum severity.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from plans import text
from plans.text import Strict, kinds_of


class Severity(StrEnum):
    """How loudly an event speaks; a channel hears events at or above its ``min_severity``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class EventKind(StrEnum):
    """What happened to a rollout or an experiment, as channels subscribe to it."""

    STARTED = "started"
    STAGE_PASSED = "stage_passed"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    GATE_FAILING = "gate_failing"
    DEADLINE_MISSED = "deadline_missed"
    PROMOTED = "promoted"
    ROLLBACK_STARTED = "rollback_started"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    RESTORE_FAILING = "restore_failing"
    DRIFT = "drift"
    HOOK_FAILED = "hook_failed"
    OVERRIDDEN = "overridden"
    BAKE_EXTENDED = "bake_extended"
    NO_WINNER = "no_winner"

    @property
    def severity(self) -> Severity:
        return SEVERITIES[self]


SEVERITIES: dict[EventKind, Severity] = {
    EventKind.STARTED: Severity.INFO,
    EventKind.STAGE_PASSED: Severity.INFO,
    EventKind.PROMOTED: Severity.INFO,
    EventKind.BAKE_EXTENDED: Severity.INFO,
    EventKind.NO_WINNER: Severity.INFO,  # an experiment's end: the control stays
    # Someone has to act, or look.
    EventKind.AWAITING_APPROVAL: Severity.WARNING,
    EventKind.PAUSED: Severity.WARNING,
    EventKind.GATE_FAILING: Severity.WARNING,
    EventKind.DEADLINE_MISSED: Severity.WARNING,
    EventKind.ABORTED: Severity.WARNING,
    EventKind.DRIFT: Severity.WARNING,
    EventKind.HOOK_FAILED: Severity.WARNING,
    EventKind.OVERRIDDEN: Severity.WARNING,
    # Users met a bad version, or stable is not back yet.
    EventKind.ROLLBACK_STARTED: Severity.CRITICAL,
    EventKind.ROLLED_BACK: Severity.CRITICAL,
    EventKind.RESTORE_FAILING: Severity.CRITICAL,
}

# What a plan's ``webhook_url_env`` was told before channels subscribed to events; it keeps
# hearing exactly these.
WEBHOOK_EVENTS = frozenset(
    {
        EventKind.STARTED,
        EventKind.PAUSED,
        EventKind.GATE_FAILING,
        EventKind.DEADLINE_MISSED,
        EventKind.PROMOTED,
        EventKind.ROLLED_BACK,
        EventKind.ABORTED,
        EventKind.RESTORE_FAILING,
        EventKind.DRIFT,
        EventKind.OVERRIDDEN,  # new with windows: no older plan heard it, so nothing changes
        EventKind.BAKE_EXTENDED,  # new with max_bake: likewise
    }
)

MAX_CHANNELS = 20


def _variable(value: str) -> str:
    # A URL pasted here would travel in the workflow's history: say so without repeating it.
    if "://" in value or "@" in value:
        raise ValueError(
            "this names the environment variable that holds the URL, not the URL itself:"
            " put the URL in the worker's environment (e.g. ROLLOUT_SLACK_URL) and name"
            " the variable here, so the secret stays out of the workflow's history"
        )
    text.check_env(value)
    return value


UrlVariable = Annotated[str, AfterValidator(_variable)]


class WebhookChannel(Strict):
    """A Slack-compatible incoming webhook; the worker reads its URL (a secret) from ``url_env``."""

    kind: Literal["webhook"] = "webhook"
    url_env: text.EnvName
    name: str = "webhook"

    def describe(self) -> str:
        return f"the webhook from ${self.url_env}"

    def hears(self, event: EventKind) -> bool:
        return event in WEBHOOK_EVENTS


class AppriseChannel(Strict):
    """Any service apprise reaches (Slack, Teams, Discord, Google Chat, email, ntfy, JSON...)."""

    kind: Literal["apprise"] = "apprise"
    name: Annotated[str, text.safe_name("channel name")]
    url_env: UrlVariable = Field(description="environment variable holding an apprise URL")
    events: list[EventKind] | None = Field(
        default=None, description="the events this channel hears (default: every event)"
    )
    min_severity: Severity = Severity.INFO

    @field_validator("events", mode="before")
    @classmethod
    def _known_events(cls, value: object) -> object:
        if isinstance(value, list):
            known = {e.value for e in EventKind}
            unknown = [str(v) for v in value if v not in known]
            if unknown:
                raise ValueError(
                    f"unknown event(s) {text.some([text.quote(u) for u in unknown])}: use"
                    f" {', '.join(e.value for e in EventKind)}"
                )
        return value

    def describe(self) -> str:
        return f"channel {self.name!r} (URL from ${self.url_env})"

    def hears(self, event: EventKind) -> bool:
        wanted = self.events is None or event in self.events
        return wanted and event.severity.rank >= self.min_severity.rank


Channel = Annotated[
    WebhookChannel | AppriseChannel,  # one line per kind
    Field(discriminator="kind"),
]
CHANNEL_KINDS = kinds_of(Channel)


class Templates(Strict):
    """Where the plan's own message templates are: ``<event>.j2`` files, first line the title."""

    dir: Annotated[str, text.short_text("templates.dir", "name a folder of templates (<event>.j2)")]


class Notify(Strict):
    """Where progress and rollbacks are announced."""

    webhook_url_env: text.EnvName | None = Field(
        default=None, description="environment variable holding a Slack-compatible webhook URL"
    )
    channels: list[AppriseChannel] = Field(default_factory=list, max_length=MAX_CHANNELS)
    templates: Templates | None = None

    @model_validator(mode="after")
    def _names_differ(self) -> Notify:
        names = [c.name for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must differ: {', '.join(twice)} used twice")
        return self

    @property
    def channel(self) -> WebhookChannel | None:
        """The legacy webhook, or None when the plan names none."""
        if self.webhook_url_env is None:
            return None
        return WebhookChannel(url_env=self.webhook_url_env)

    def channels_for(self, event: EventKind) -> list[WebhookChannel | AppriseChannel]:
        """The channels that hear ``event``, the legacy webhook first."""
        every: list[WebhookChannel | AppriseChannel] = []
        if self.channel is not None:
            every.append(self.channel)
        every.extend(self.channels)
        return [c for c in every if c.hears(event)]


TEMPLATE_SUFFIX = ".j2"
MAX_TEMPLATE_BYTES = 64 * 1024


def template_problems(directory: Path) -> list[str]:
    """What is wrong with a folder of message templates, each with what to do about it.

    Templates are named after events (``promoted.j2``); names starting with ``_`` are parts
    the others include (``_footer.j2``). A misspelt name would silently never be used, so it
    is an error, and so is a template Jinja2 cannot parse.
    """
    import jinja2

    if not directory.is_dir():
        return [f"{directory} is not a folder: create it, or remove notify.templates"]
    known = {e.value for e in EventKind}
    problems = []
    parser = jinja2.Environment()
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        stem = path.name.removesuffix(TEMPLATE_SUFFIX)
        if path.suffix != TEMPLATE_SUFFIX or (stem not in known and not stem.startswith("_")):
            problems.append(
                f"{path.name} is not a template name: use <event>{TEMPLATE_SUFFIX} (events:"
                f" {', '.join(sorted(known))}) or _<part>{TEMPLATE_SUFFIX} for included parts"
            )
            continue
        try:
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                problems.append(f"{path.name} is larger than {MAX_TEMPLATE_BYTES:,} bytes")
                continue
            parser.parse(path.read_text(encoding="utf-8"))
        except jinja2.TemplateSyntaxError as error:
            problems.append(f"{path.name} line {error.lineno}: {error.message}")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"cannot read {path.name}: {error}")
    return problems
