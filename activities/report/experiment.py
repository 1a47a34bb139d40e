"""An experiment's report: each variant's share, its primary effect with its interval (and
a plot of it over the checks), its guardrails, the winner and why, and the audit trail, as
Markdown and JSON.

Written into the report store beside the rollouts' (``<root>/<service>/<first run id>/``),
as ``experiment.md``, ``experiment.json`` and ``experiment-effect.png``, when the experiment
ends; ``rollout report`` writes it again from what the history holds (``read_back``).
"""

from __future__ import annotations

import re
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.storage import owned_folder, write_whole
from client import history
from plans.runtime.experiment import EffectPoint, ExperimentReportRequest, ExperimentStatus
from plans.runtime.messages import WRITE_EXPERIMENT_REPORT

PLOT = "experiment-effect.png"


def markdown(status: ExperimentStatus, plotted: bool = False) -> str:
    """The report as Markdown: the end, a table of the variants, the audit trail."""
    state = status.state.value.replace("_", " ")
    lines = [
        f"# Experiment of {status.service}: {state}",
        "",
        f"Winner: **{status.winner}**" if status.winner else "Winner: none",
        "",
        f"Reason: {status.reason or '-'}",
        "",
        f"Primary: `{status.primary}` ({status.better} is better), judged at"
        f" {status.confidence:.2%} per variant against the control `{status.control}`;"
        f" {status.checks} checks.",
        "",
        "| variant | share | planned | primary effect | shown better | guardrails | out |",
        "| --- | ---: | ---: | --- | --- | --- | --- |",
    ]
    for v in status.variants:
        effect = "control" if v.control else (v.effect_text() or "not measured")
        guards = ", ".join(f"{name} {x.outcome.value}" for name, x in v.guardrails.items())
        better = "yes" if v.better else ("" if v.control else "no")
        lines.append(
            f"| {v.name} | {v.share}% | {v.planned_share}% | {effect} | {better} |"
            f" {guards or '-'} | {_cell(v.out) or '-'} |"
        )
    if plotted:
        lines += ["", f"![each variant's {status.primary} over {status.control}'s]({PLOT})"]
    verdicts = [(v.name, v.primary) for v in status.variants if v.primary is not None]
    if verdicts:
        lines += ["", "## The primary's last verdicts", ""]
        lines += [f"- {name}: {_cell(x.reason)}" for name, x in verdicts if x is not None]
    lines += ["", "## Audit trail", ""]
    lines += [f"- {e.at:%Y-%m-%d %H:%M:%S} {e.kind}: {_cell(e.text)}" for e in status.events]
    return "\n".join(lines) + "\n"


def write(
    status: ExperimentStatus,
    root: Path,
    run_id: str,
    setting: str,
    trail: dict[str, list[EffectPoint]] | None = None,
) -> dict[str, Path]:
    """Write ``experiment.md``, ``experiment.json`` and, with a ``trail`` of effects, its
    plot in the run's folder (``root/SERVICE/RUN_ID``); the files by kind."""
    folder = owned_folder(root / _safe(status.service) / _safe(run_id), setting, within=root)
    return write_into(folder, status, trail)


def write_into(
    folder: Path, status: ExperimentStatus, trail: dict[str, list[EffectPoint]] | None = None
) -> dict[str, Path]:
    """The report's files in ``folder`` (checked by the caller), by kind: md, json, png."""
    written = {"json": folder / "experiment.json", "md": folder / "experiment.md"}
    write_whole(written["json"], (status.model_dump_json(indent=2) + "\n").encode())
    if trail and any(trail.values()):
        from activities.report.plots import effect_png

        title = f"{status.primary}: each variant over {status.control} ({status.better} is better)"
        written["png"] = folder / PLOT
        write_whole(written["png"], effect_png(trail, status.control, title))
    write_whole(written["md"], markdown(status, "png" in written).encode())
    return written


async def read_back(
    client: Client, workflow_id: str, run_id: str | None = None
) -> ExperimentReportRequest | None:
    """What the experiment handed its report activity when it ended (its status and each
    variant's trail), read from the run's history; None while it runs (or if it never got
    that far)."""
    events = await history.run_events(client, workflow_id, run_id or "")
    for event in reversed(events):
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != WRITE_EXPERIMENT_REPORT:
            continue
        decoded = await client.data_converter.decode(
            list(attributes.input.payloads), [ExperimentReportRequest]
        )
        found = decoded[0] if decoded else None
        return found if isinstance(found, ExperimentReportRequest) else None
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "run"
