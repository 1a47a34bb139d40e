"""Messages from Jinja2 templates: a rollout's events in words, title on the first line.

Templates are looked up in the plan's own folder, then in the worker's
``ROLLOUT_TEMPLATE_DIR``, then among the defaults beside this module, by the event's name
(``promoted.j2``); a folder may override one event or the shared parts (``_footer.j2``).
They run in Jinja2's sandbox (a template sees the event's data, never the worker's
objects) with autoescape off: the output is plain text, not HTML.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from plans import EventKind, Notice, Notification, Severity
from plans.notify import TEMPLATE_SUFFIX

DEFAULTS = Path(__file__).parent / "templates"
TEMPLATE_DIR_ENV = "ROLLOUT_TEMPLATE_DIR"
UI_URL_ENV = "TEMPORAL_UI_URL"
DEFAULT_UI_URL = "http://localhost:8233"
MAX_TITLE_CHARS = 250
MAX_BODY_CHARS = 8_000


@dataclass(frozen=True)
class Message:
    """What a notifier sends: a rendered title and body, and the one-line ``text``."""

    title: str
    body: str
    text: str
    service: str
    state: str
    kind: str = ""
    severity: Severity = Severity.INFO


@dataclass(frozen=True)
class RunLink:
    """Where the run is: the activity's workflow, for the Temporal UI link."""

    namespace: str
    workflow_id: str
    run_id: str = ""

    def ui_url(self) -> str:
        base = os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL
        return f"{base.rstrip('/')}/namespaces/{self.namespace}/workflows/{self.workflow_id}"


def template_dirs(notice: Notice) -> tuple[str, ...]:
    """Where this notice's templates are looked up, first match wins."""
    dirs = [notice.templates_dir, os.environ.get(TEMPLATE_DIR_ENV), str(DEFAULTS)]
    return tuple(d for d in dirs if d)


@functools.lru_cache(maxsize=32)
def environment(dirs: tuple[str, ...]) -> SandboxedEnvironment:
    """A sandboxed environment over these folders; a template edited on disk is read again."""
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(d) for d in dirs]),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    env.filters["num"] = _num
    env.filters["duration"] = _duration
    return env


def render(message: Notification, link: RunLink) -> Message:
    """The message for ``message``'s notice; without one (older runs), its text alone."""
    notice = message.notice
    if notice is None:
        return Message(
            title=message.text.split("\n", 1)[0][:MAX_TITLE_CHARS],
            body=message.text,
            text=message.text,
            service=message.service,
            state=message.state,
        )
    context = context_of(notice, link)
    dirs = template_dirs(notice)
    name = f"{notice.kind.value}{TEMPLATE_SUFFIX}"
    try:
        rendered = environment(dirs).get_template(name).render(context)
    except jinja2.TemplateError as error:
        # A broken template of the plan's or the worker's must not lose the message.
        fallback = environment((str(DEFAULTS),)).get_template(name).render(context)
        rendered = f"{fallback}\n(template {name} failed: {error}; the default was used)"
    title, _, body = rendered.strip().partition("\n")
    return Message(
        title=title.strip()[:MAX_TITLE_CHARS],
        body=_clip(body.strip("\n") or title, MAX_BODY_CHARS),
        text=message.text,
        service=message.service,
        state=message.state,
        kind=notice.kind.value,
        severity=notice.kind.severity,
    )


def context_of(notice: Notice, link: RunLink) -> dict[str, Any]:
    """What a template sees: the notice's fields as plain data, and a few derived ones."""
    data = notice.model_dump(mode="json", exclude={"templates_dir", "key"})
    stages = data["stages"]
    following = notice.stage_index + 1
    data.update(
        event=notice.kind.value,
        severity=notice.kind.severity.value,
        ui_url=link.ui_url(),
        workflow_id=link.workflow_id,
        timeline=_duration(sum(s["bake_s"] for s in stages)),
        approvals=sum(1 for s in stages if s["approval"]),
        next_stage=stages[following] if 0 <= following < len(stages) else None,
        restoring=data["restored"],
        eta=_eta(len(notice.restored)),
    )
    return data


def _eta(changes: int) -> str:
    if changes == 0:
        return "nothing to change: stable has all traffic"
    return f"under a minute ({changes} router change(s), each retried until it holds)"


def _num(value: Any) -> str:
    if value is None or isinstance(value, jinja2.Undefined):
        return "-"
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: Any) -> str:
    total = int(float(seconds or 0))
    if total <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n(cut)"


__all__ = ["EventKind", "Message", "RunLink", "render"]
