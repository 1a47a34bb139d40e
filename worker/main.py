"""`rollout-worker`: runs RolloutWorkflow and its activities until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from client.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, connect, end_process, task_queue
from worker.drain import OtherVersionsRunning, refuse_other_versions

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime
    from temporalio.worker import Interceptor, Worker, WorkflowRunner

log = logging.getLogger("rollout-worker")

EXIT_STOPPED = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_OTHER_VERSIONS = 3
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

STICKY_TIMEOUT_S = 30.0
"""Temporal's default is 10 s. On a busy machine tasks waited longer than that: each was then
taken from the shared queue and rebuilt from its whole history, which made the next ones wait
longer still. A worker that died is noticed by the server within 10 s either way; only the
tasks handed to it in those 10 s wait out this timeout."""

DESCRIPTION = """\
Run the Durable Rollouts worker: it polls a Temporal task queue and runs RolloutWorkflow
and its activities (traffic shifts on the router, gate checks against Prometheus,
notifications). Run it wherever the router and Prometheus are reachable; run more than
one for availability. `python -m worker` is the same program.
"""

EPILOG = f"""\
environment:
  TEMPORAL_ADDRESS          host:port of the Temporal frontend (default {DEFAULT_ADDRESS})
  TEMPORAL_NAMESPACE        namespace (default: default)
  TEMPORAL_API_KEY          API key, e.g. for Temporal Cloud
  TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME (and the *_DATA forms)
                            TLS to the server
  TEMPORAL_PROFILE          profile of the config file to use (default: default)
  TEMPORAL_CONFIG_FILE      the config file (default ~/.config/temporalio/temporal.toml);
                            TEMPORAL_* variables win over the profile
  ROLLOUT_TASK_QUEUE        task queue to poll (default {DEFAULT_TASK_QUEUE}); `rollout start`
                            must use the same one
  ROLLOUT_WORKER_METRICS    host:port where the worker serves its Prometheus metrics: the
                            rollout_* ones (workflows/rollout/metering.py) and the
                            SDK's (default: none)
  TEMPORAL_UI_URL           base of the Temporal UI links in notifications
                            (default http://localhost:8233)
  ROLLOUT_TEMPLATE_DIR      a folder of message templates (<event>.j2) that replace the
                            defaults; a plan's notify.templates win over it
  ROLLOUT_NOTIFY_DIR        where the keys of sent notifications are kept, so a retried
                            activity sends nothing twice (default: notices in
                            $XDG_STATE_HOME/durable-rollouts, else in
                            ~/.local/state/durable-rollouts); workers that share it share
                            the record
  ROLLOUT_REPORT_DIR        where each rollout's report is written when it ends (default:
                            rollout-reports in the current folder); its file URL is linked
                            from the final message and the run's details in the Temporal UI.
                            Both folders are made (mode 750) if missing, and refused when
                            another user owns them or may write in them; files in them are
                            written whole (through a rename) with mode 640.
  ROLLOUT_WORKFLOW_SANDBOX  on: run workflows in the SDK's sandbox (about a third more
                            worker CPU); off (default): the tests run every workflow in the
                            sandbox instead
  ROLLOUT_STICKY_TIMEOUT    seconds a rollout's next workflow task waits for this worker,
                            which holds the rollout in memory, before any worker may take it
                            and rebuild it from its history (default {STICKY_TIMEOUT_S:g})
  ROLLOUT_ALLOWED_SIGNERS   the allowed_signers file (OpenSSH's, as git uses) of the people
                            whose signed forward commands (approve, promote, resume, override,
                            retry, freeze remove) the worker verifies; read at each check
  ROLLOUT_APPROVER_GROUPS   optional: a file of `group: principal, principal` lines, for plans
                            whose approvers name groups
  ROLLOUT_REQUIRE_SIGNED    on: every plan's forward commands need a verified person, not only
                            plans that name approvers (default: off)
  ROLLOUT_PLAN_SECRETS      the variables plans may name for their secrets: names and
                            prefixes, e.g. PROMETHEUS_TOKEN,SLACK_* (default: ROLLOUT_*);
                            TEMPORAL_* and the worker's own settings never. A rollout
                            naming another is refused when it starts, saying which
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER (and the usual OTEL_* variables)
                            trace workflows and activities, with the rollout's service and
                            stage on the spans (needs the otel extra; docs/production.md)
  ROLLOUT_OUTBOUND_HOSTS    optional: the only hosts requests for plans go to (metric
                            sources, web gates, hooks, notifications): names, *.domain,
                            address ranges, e.g. prometheus.internal,*.corp.example,10.0.0.0/8.
                            Link-local and cloud metadata addresses are refused always
  and the variables a plan names: metrics.bearer_token_env (a Prometheus bearer token),
  notify.webhook_url_env (a webhook URL), each notify.channels url_env (an apprise URL),
  a web source's secret_headers and a hook's headers_env and secret_env, read by the
  activities at each use, so secrets never enter a workflow's history.

The worker does not look for a dev stack: `rollout dev up` starts one of its own.

Before it polls, the worker lists the product's running workflows on its task queue and
refuses to start while any was written by another history version (each run records its
version in its memo, history_version): its code could not replay them. Let those runs
finish on workers of their version first (docs/upgrading.md).

exit codes:
  {EXIT_STOPPED}    stopped by SIGTERM or Ctrl-C (SIGINT), also while still starting: a clean stop
  {EXIT_ERROR}    cannot reach Temporal, or the worker failed (the error is printed)
  {EXIT_USAGE}    usage error, or a setting it refuses (e.g. a folder it may not use)
  {EXIT_OTHER_VERSIONS}    runs of another history version run on the task queue (they are named)
"""


def parser() -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(
        prog="rollout-worker",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    arguments.add_argument(
        "--drain-check",
        choices=("on", "off"),
        default="on",
        help="off: start even while runs of another history version run on the task queue;"
        " they then fail their workflow tasks until ended or reset (default: on)",
    )
    return arguments


CACHED_WORKFLOWS = 4_000  # two per rollout, for 2,000 rollouts on one worker


def build_worker(client: Client, queue: str, executor: ThreadPoolExecutor) -> Worker:
    """The worker with every workflow and activity of the product registered."""
    # Imported here: the activities bring matplotlib and numpy, which `--help` does not need.
    from temporalio.worker import Worker

    from activities.experiment import EXPERIMENT_ACTIVITIES
    from activities.fanout import signal_targets
    from activities.freezes import FreezeReader
    from activities.identity import verify_command
    from activities.ownership import TargetLeases
    from activities.reports import ReportWriter
    from activities.rollout import ALL_ACTIVITIES
    from activities.scheduling import ScheduledStarts
    from workflows.experiment import ExperimentWorkflow
    from workflows.freezes import FreezeCalendar
    from workflows.lease import TargetLease
    from workflows.release import ReleaseWorkflow
    from workflows.rollout import RolloutWorkflow
    from workflows.scheduled import ScheduledStart

    return Worker(
        client,
        task_queue=queue,
        workflows=[
            RolloutWorkflow,
            TargetLease,
            FreezeCalendar,
            ScheduledStart,
            ReleaseWorkflow,
            ExperimentWorkflow,
        ],
        activities=[
            *ALL_ACTIVITIES,
            *EXPERIMENT_ACTIVITIES,
            signal_targets,
            verify_command,
            *TargetLeases(client).activities(),
            *FreezeReader(client).activities(),
            *ScheduledStarts(client).activities(),
            *ReportWriter(client).activities(),
        ],
        activity_executor=executor,
        max_concurrent_activities=64,
        # Each rollout has a lease workflow beside it; both stay cached, so a lease waking
        # every ten minutes does not push a rollout out (and make it replay from history).
        max_cached_workflows=CACHED_WORKFLOWS,
        sticky_queue_schedule_to_start_timeout=sticky_timeout(),
        workflow_runner=workflow_runner(),
        interceptors=span_interceptors(),
    )


def span_interceptors() -> list[Interceptor]:
    """When the worker traces (the client's interceptor), its spans' rollout attributes."""
    from client.tracing import wanted

    if not wanted():
        return []
    from worker.tracing import RolloutSpans

    return [RolloutSpans()]


def workflow_runner() -> WorkflowRunner:
    """The SDK's sandbox only where ROLLOUT_WORKFLOW_SANDBOX=on.

    The sandbox imports a workflow's modules afresh for every run it loads and enters them
    again for each payload of each activation, a large part of the worker's CPU at scale
    (measured in benchmarks/README.md).
    What the sandbox guards against (a workflow reading the clock, the network or shared
    state) is guarded in the tests instead: every workflow test and every replay of a kept
    history runs in the sandbox, so workflow code that breaks its rules fails there.
    """
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    return SandboxedWorkflowRunner() if sandbox_wanted() else UnsandboxedWorkflowRunner()


def sandbox_wanted() -> bool:
    """ROLLOUT_WORKFLOW_SANDBOX: ``on`` or ``off`` (the default); anything else is refused."""
    value = os.environ.get("ROLLOUT_WORKFLOW_SANDBOX", "off").strip().lower() or "off"
    if value not in ("on", "off"):
        raise ValueError(f"ROLLOUT_WORKFLOW_SANDBOX must be on or off, not {value!r}")
    return value == "on"


def sticky_timeout() -> timedelta:
    """ROLLOUT_STICKY_TIMEOUT in seconds (default STICKY_TIMEOUT_S); anything else is refused."""
    value = os.environ.get("ROLLOUT_STICKY_TIMEOUT", "").strip()
    if not value:
        return timedelta(seconds=STICKY_TIMEOUT_S)
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 1 <= seconds <= 600:
        raise ValueError(
            f"ROLLOUT_STICKY_TIMEOUT must be a number of seconds from 1 to 600, not {value!r}"
        )
    return timedelta(seconds=seconds)


def prepare_folders() -> None:
    """Make the folders the worker writes in; refuse one another user owns or may write in."""
    # At start, not at the first notification: a record that cannot be kept would otherwise
    # lose every message quietly (a failed notification only logs).
    from activities.notifiers.sent import SentRecord
    from activities.reports import REPORT_DIR_ENV
    from activities.storage import owned_folder

    SentRecord().ready()
    configured = os.environ.get(REPORT_DIR_ENV)
    if configured:
        owned_folder(Path(configured), REPORT_DIR_ENV)


def keep_bytecode() -> None:
    """Let the workflow sandbox load compiled bytecode instead of compiling the source again.

    With ROLLOUT_WORKFLOW_SANDBOX=on the sandbox imports a workflow's module afresh for every
    run the worker loads (a new run, or one replayed after an eviction or a restart). Without
    a bytecode cache each of those imports compiles workflows/rollout/workflow.py again (its cost is
    in benchmarks/README.md). PYTHONDONTWRITEBYTECODE, common in
    containers, forbids the cache next to the source, so the worker keeps one of its own in
    the temporary folder. Its name there can be guessed: a folder someone else made under it
    first (to plant compiled code the worker would run) is refused, and the cache stays off.
    """
    if not sys.dont_write_bytecode:
        return
    if sys.pycache_prefix is None:
        from activities.storage import StoreRefused, owned_folder

        folder = Path(tempfile.gettempdir()) / f"rollout-worker-{os.getuid()}"
        try:
            owned_folder(folder, "PYTHONPYCACHEPREFIX")
        except StoreRefused as refused:
            log.warning("compiled code is not cached: %s", refused)
            return
        sys.pycache_prefix = str(folder)
    sys.dont_write_bytecode = False


def _runtime() -> Runtime | None:
    address = os.environ.get("ROLLOUT_WORKER_METRICS")
    if not address:
        return None
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    from plans.runtime.metric_names import BUCKETS

    metrics = PrometheusConfig(bind_address=address, histogram_bucket_overrides=BUCKETS)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


async def serve(drain_check: bool = True) -> None:
    """Poll until SIGTERM or SIGINT, then let running tasks finish and return.

    With ``drain_check``, first refuse (OtherVersionsRunning) to take over runs of another
    history version.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    # main() blocked them; one that came meanwhile is delivered now, and sets stop.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    connecting = asyncio.ensure_future(connect(_runtime(), program="rollout-worker"))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        _stop_listening(loop)
        log.info("stopped before connecting")
        return
    stopping.cancel()
    client = connecting.result()
    queue = task_queue()
    if drain_check:
        await refuse_other_versions(client, queue)
    keep_bytecode()
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="activity") as executor:
        worker = build_worker(client, queue, executor)
        async with worker:
            log.info(
                "worker polling task queue %r on %s",
                queue,
                client.service_client.config.target_host,
            )
            await stop.wait()
            _stop_listening(loop)
            log.info("stopping: finishing running tasks")
    log.info("stopped")


def _stop_listening(loop: asyncio.AbstractEventLoop) -> None:
    """Once stopping, hold further SIGTERM and SIGINT back: closing the loop restores their
    default action, and a second signal would then kill the worker before it finished."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS:
        loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped; the process ends through ``end_process`` with a documented code."""
    # Held back until serve()'s event loop handles them, so a SIGTERM during start-up stops
    # the worker cleanly too. (A Python handler that raised would be swallowed by any
    # `except Exception` it happened to interrupt, logging's own included.) Threads started
    # from here on inherit the mask, so the signals reach the main thread's handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        end_process(EXIT_USAGE if exit_.code else EXIT_STOPPED)
    from activities.outbound import OutboundRefused, current_policy
    from activities.plan_secrets import allowlist
    from activities.storage import StoreRefused
    from client import tracing

    try:
        tracing.check()
        sandbox_wanted()
        sticky_timeout()
        prepare_folders()
        allowlist()
        current_policy()
    except (ValueError, StoreRefused, OutboundRefused, tracing.TracingUnavailable) as error:
        print(f"rollout-worker: {error}", file=sys.stderr)
        end_process(EXIT_USAGE)
    code = EXIT_STOPPED
    try:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        log.info("starting")
        asyncio.run(serve(drain_check=args.drain_check == "on"))
    except KeyboardInterrupt:
        log.info("stopped before polling")
    except OtherVersionsRunning as refused:
        print(f"rollout-worker: {refused}", file=sys.stderr)
        code = EXIT_OTHER_VERSIONS
    except RuntimeError as error:
        # What Client.connect raises when the server cannot be reached.
        address = os.environ.get("TEMPORAL_ADDRESS", "the configured address")
        print(f"rollout-worker: cannot reach Temporal at {address}: {error}", file=sys.stderr)
        code = EXIT_ERROR
    except Exception:
        traceback.print_exc()
        code = EXIT_ERROR
    # A SIGTERM now changes nothing: the worker is stopping already.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # Never let the interpreter finalize while the SDK's Rust threads live (see end_process).
    end_process(code)
