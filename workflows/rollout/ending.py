"""How a rollout ends, beyond putting traffic where it belongs: the report of the run.

The report is written by an activity into the worker's report store and linked from the
run's details in the Temporal UI and from the final message. It is best effort: a report
that cannot be written never blocks a rollout's end nor changes its outcome.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reports import ReportWriter
    from plans.runtime.progress import RolloutProgress
    from plans.runtime.state import ReportRequest
    from workflows.failures import root_message

REPORT_TIMEOUT = timedelta(minutes=2)
REPORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=2)


async def write_report(progress: RolloutProgress) -> None:
    """Write the run's report and link it from the run's details; failures are only logged."""
    info = workflow.info()
    try:
        url = await workflow.execute_activity_method(
            ReportWriter.write_report,
            ReportRequest(workflow_id=info.workflow_id, run_id=info.run_id),
            start_to_close_timeout=REPORT_TIMEOUT,
            retry_policy=REPORT_RETRY,
            summary="write the rollout's report",
        )
    except ActivityError as error:
        workflow.logger.warning("Report not written: %s", root_message(error))
        return
    progress.report_url = url
    details = workflow.get_current_details()
    workflow.set_current_details(f"{details}\n\nReport: {url}" if details else f"Report: {url}")
    workflow.upsert_memo({"report": url})
