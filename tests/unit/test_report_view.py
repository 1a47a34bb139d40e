"""A report's HTML as a browser shows it: headless Chromium, offline, takes its picture."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib import image

from activities.report import plots
from activities.report.render import write
from tests.unit.test_report import report_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Flags for a browser that fetches nothing and keeps nothing: the page must open offline.
QUIET = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screenshot(page: Path, picture: Path, profile: Path, size: str = "1100,1600") -> None:
    """Chromium's picture of ``page``; the browser ends by itself, or is killed at the timeout."""
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            *QUIET,
            f"--user-data-dir={profile}",
            f"--screenshot={picture}",
            f"--window-size={size}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap.sh installs it)"
)
async def test_the_html_report_shows_its_incident_and_plots(tmp_path: Path) -> None:
    report = await report_of("rolled_back.json")
    written = write(report, tmp_path / "report", ("html",))
    picture = tmp_path / "report.png"
    screenshot(written["html"], picture, tmp_path / "profile")
    pixels = image.imread(str(picture))
    height, width = pixels.shape[:2]
    assert (width, height) == (1100, 1600)
    rgb = pixels[:, :, :3]
    # The rolled-back badge and the incident's border are drawn in the report's red...
    red = (abs(rgb[:, :, 0] - 0xC9 / 255) < 0.03) & (rgb[:, :, 1] < 0.25) & (rgb[:, :, 2] < 0.25)
    assert red.sum() > 200
    # ...and the plot's dashed limit line in its grey: the embedded image did render.
    r, g, b = (int(plots.LIMIT[i : i + 2], 16) / 255 for i in (1, 3, 5))
    grey = (
        (abs(rgb[:, :, 0] - r) < 0.03)
        & (abs(rgb[:, :, 1] - g) < 0.03)
        & (abs(rgb[:, :, 2] - b) < 0.03)
    )
    assert grey.sum() > 200
