"""A report written out: Markdown (with its PNGs beside it), HTML (images embedded, opens
offline) or JSON (the model, for other tools).

Each file is written whole through a rename (``activities.storage``), so a retried report
activity or a second worker writing the same run's report leaves one whole version of each.
"""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from activities.report import plots
from activities.report.model import BaselineRow, Report
from activities.storage import owned_folder, write_whole
from plans import format_duration
from plans.gates.base import format_value

FORMATS = ("md", "html", "json")
TEMPLATES = Path(__file__).parent / "templates"


def folder_for(root: str | Path, report: Report) -> Path:
    """Where a run's report lives in a report store: ``<root>/<service>/<first run id>``."""
    return (
        Path(root) / _safe(report.service) / _safe(report.run_ids[0] if report.run_ids else "run")
    )


async def store(report: Report, root: str | Path, setting: str) -> dict[str, Path]:
    """Write the report into its folder of the store ``root``, drawn and written off the loop."""
    # Drawing takes about 0.1 s a gate: on the event loop it would hold up every other
    # activity and workflow task of the worker for seconds.
    return await asyncio.to_thread(
        write, report, folder_for(root, report), FORMATS, within=Path(root), setting=setting
    )


def write(
    report: Report,
    out: str | Path,
    formats: tuple[str, ...] = FORMATS,
    *,
    within: Path | None = None,
    setting: str = "the report folder",
) -> dict[str, Path]:
    """Write the report in ``formats`` into the folder ``out``; the paths written, by format."""
    folder = owned_folder(Path(out), setting, within=within)
    written: dict[str, Path] = {}
    images = (
        {s.gate: plots.gate_png(report, s) for s in report.gates} if set(formats) - {"json"} else {}
    )
    if "json" in formats:
        written["json"] = folder / "report.json"
        write_whole(written["json"], (report.model_dump_json(indent=2) + "\n").encode())
    if "md" in formats:
        files = {}
        for gate, png in images.items():
            name = f"gate-{_safe(gate)}.png"
            write_whole(folder / name, png)
            files[gate] = name
        written["md"] = folder / "report.md"
        write_whole(written["md"], render("report.md.j2", report, files).encode())
    if "html" in formats:
        embedded = {
            gate: "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            for gate, png in images.items()
        }
        written["html"] = folder / "report.html"
        write_whole(written["html"], render("report.html.j2", report, embedded).encode())
    return written


def render(template: str, report: Report, images: dict[str, str]) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(
        value=_value, change=_change, effect=_effect, met=_met, clock=_clock, span=_span
    )
    return environment.get_template(template).render(r=report, images=images)


def _value(value: float | None, unit: str = "") -> str:
    return "no data" if value is None else format_value(value, unit)


def _change(change: float | None) -> str:
    return "n/a" if change is None else f"{change * 100:+.1f}%"


def _effect(row: BaselineRow) -> str:
    return f"{row.effect} vs {row.target}" if row.effect else "n/a"


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO"}.get(met, "unknown") if met is not None else "unknown"


def _clock(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: Any) -> str:
    if seconds is None:
        return "unknown"
    from datetime import timedelta

    return format_duration(timedelta(seconds=round(float(seconds))))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
