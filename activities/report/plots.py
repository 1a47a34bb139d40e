"""One PNG per gate: the canary's and the stable's values over the whole rollout, the limit,
the stage boundaries and the checks that failed; for an experiment, one PNG of each
variant's primary effect over the control with its interval. Drawn with matplotlib's Agg
canvas (no display needed).

The worker draws in threads, off its event loop. pyplot keeps global state (its figure
registry) and is not meant for threads, so each plot is a ``Figure`` of its own on its own
``FigureCanvasAgg``; matplotlib's docs still call artists unsafe across threads, so plots are
drawn one at a time (the GIL would serialize most of the work anyway).
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from typing import Any

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from activities.report.model import GateSeries, Report
from plans.runtime.experiment import EffectPoint

CANARY, STABLE, LIMIT, FAILED = "#d9480f", "#1c7ed6", "#868e96", "#c92a2a"
VARIANT_COLOURS = ("#d9480f", "#2f9e44", "#7048e8")

_drawing = threading.Lock()


def gate_png(report: Report, series: GateSeries) -> bytes:
    """The gate's plot as PNG bytes."""
    with _drawing:
        return _draw(report, series)


def _draw(report: Report, series: GateSeries) -> bytes:
    scale, unit = _scale(series.unit)
    figure = Figure(figsize=(10.5, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    lines: tuple[tuple[Any, dict[str, Any]], ...] = (
        (series.canary, {"color": CANARY, "label": _named("canary", report.canary)}),
        (series.stable, {"color": STABLE, "label": _named("stable", report.stable)}),
        (
            series.limit,
            {"color": LIMIT, "linestyle": "--", "label": f"limit {series.threshold}"},
        ),
    )
    for points, style in lines:
        if points:
            axes.plot([_x(p.at) for p in points], [p.value * scale for p in points], **style)
    checked = [c for c in series.checks if c.canary is not None]
    passed = [c for c in checked if c.outcome != "fail"]
    failed = [c for c in checked if c.outcome == "fail"]
    if passed:
        axes.scatter(
            [_x(c.at) for c in passed],
            [(c.canary or 0.0) * scale for c in passed],
            s=14,
            color=CANARY,
            zorder=3,
            label="check",
        )
    if failed:
        axes.scatter(
            [_x(c.at) for c in failed],
            [(c.canary or 0.0) * scale for c in failed],
            s=60,
            marker="x",
            color=FAILED,
            zorder=4,
            label="failed check",
        )
    # Stage names just above the frame: inside it they would cross the lines.
    for stage in report.stages:
        axes.axvline(_x(stage.start), color="#495057", linewidth=0.8, linestyle=":")
        axes.annotate(
            f"{stage.name} {stage.weight}%",
            (_x(stage.start), 1.0),
            xycoords=axes.get_xaxis_transform(),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize=8,
            color="#495057",
        )
    if report.ended_at is not None:
        axes.axvline(_x(report.ended_at), color="#495057", linewidth=0.8)
    axes.set_title(f"{series.gate} ({series.kind})", loc="left", fontsize=11, pad=16)
    axes.set_ylabel(unit)
    axes.xaxis_date(tz=UTC)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    axes.grid(alpha=0.25)
    return _png(figure, axes)


def effect_png(trail: dict[str, list[EffectPoint]], control: str, title: str) -> bytes:
    """Each variant's effect over the control at every check, its interval shaded, and the
    line of no change (x1) the interval must leave to show a difference."""
    with _drawing:
        figure = Figure(figsize=(10.5, 3.6), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.axhline(1.0, color=LIMIT, linestyle="--", label=f"as {control} (x1)")
        for colour, (variant, points) in zip(VARIANT_COLOURS, sorted(trail.items()), strict=False):
            if not points:
                continue
            at = [_x(p.at) for p in points]
            # Markers: a variant taken out at its first check is one point, and still shown.
            axes.plot(
                at,
                [p.effect for p in points],
                color=colour,
                marker="o",
                markersize=3,
                label=variant,
            )
            if len(points) < 30:  # few checks: each interval as a bar too
                axes.vlines(
                    at, [p.low for p in points], [p.high for p in points], color=colour, alpha=0.3
                )
            axes.fill_between(
                at, [p.low for p in points], [p.high for p in points], color=colour, alpha=0.18
            )
        axes.set_title(title, loc="left", fontsize=11)
        axes.set_ylabel(f"x {control}")
        axes.xaxis_date(tz=UTC)
        # Days of an experiment, or minutes: the dates say as much as the span needs.
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
        axes.grid(alpha=0.25)
        return _png(figure, axes)


def _png(figure: Figure, axes: Any) -> bytes:
    """The figure as PNG bytes, its legend (if any) beside the plot and its dates slanted."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _named(role: str, server: str) -> str:
    return role if server == role else f"{role} ({server})"


def _x(at: datetime) -> float:
    """A moment as matplotlib's date axis counts (days since its epoch)."""
    return float(mdates.date2num(at))  # type: ignore[no-untyped-call]


def _scale(unit: str) -> tuple[float, str]:
    if unit == "ratio":
        return 100.0, "%"
    if unit == "seconds":
        return 1.0, "seconds"
    return 1.0, ""
