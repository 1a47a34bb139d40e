"""The end-of-rollout report: an activity that writes the run's report to the report store.

The store is a folder the worker is configured with (``ROLLOUT_REPORT_DIR``; `rollout dev
up` points it beside the dev stack) and owns: the folder is refused when another user owns
it or may write in it. The activity needs a client to read the run's history and to ask
its status, so it is bound to one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from plans.runtime import messages
from plans.runtime.experiment import ExperimentReportRequest
from plans.runtime.state import ReportRequest

REPORT_DIR_ENV = "ROLLOUT_REPORT_DIR"


class ReportWriter:
    """Writes reports into the store; the worker registers its activity."""

    def __init__(self, client: Client, store: str | None = None) -> None:
        self.client = client
        self.store = store

    def activities(self) -> list[Callable[..., Any]]:
        return [self.write_report, self.write_experiment_report]

    @activity.defn(name="write_report")
    async def write_report(self, request: ReportRequest) -> str:
        """Write the run's report (HTML, Markdown with its plots, JSON); its HTML's file URL."""
        # Imported here: matplotlib is heavy, and the workflow module imports this one.
        from activities.notifiers.messages import RunLink
        from activities.report.gather import gather, report_dir
        from activities.report.render import store
        from activities.storage import StoreRefused

        report = await gather(self.client, request.workflow_id, request.run_id)
        report.ui_url = RunLink(self.client.namespace, request.workflow_id).ui_url()
        try:
            written = await store(report, self.store or report_dir(), REPORT_DIR_ENV)
        except StoreRefused as error:
            # No retry fixes a folder's owner or mode: say so once, in the run's history.
            raise ApplicationError(str(error), type="StoreRefused", non_retryable=True) from None
        activity.logger.info("report of %s written to %s", request.workflow_id, written["html"])
        return written["html"].resolve().as_uri()

    @activity.defn(name=messages.WRITE_EXPERIMENT_REPORT)
    async def write_experiment_report(self, request: ExperimentReportRequest) -> str:
        """Write an ended experiment's report (Markdown and JSON); its Markdown's file URL."""
        import asyncio
        from pathlib import Path

        from activities.report import experiment
        from activities.report.gather import report_dir
        from activities.storage import StoreRefused

        root = Path(self.store or report_dir())
        try:
            written = await asyncio.to_thread(
                experiment.write,
                request.status,
                root,
                request.run_id,
                REPORT_DIR_ENV,
                request.trail,
            )
        except StoreRefused as error:
            raise ApplicationError(str(error), type="StoreRefused", non_retryable=True) from None
        return written["md"].resolve().as_uri()
