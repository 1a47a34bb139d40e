"""The worker process: runs RolloutWorkflow and the activities until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.rollout import ALL_ACTIVITIES
from worker.config import connect, task_queue
from workflows.rollout import RolloutWorkflow

log = logging.getLogger("rollout-worker")


def build_worker(client: Client, queue: str, executor: ThreadPoolExecutor) -> Worker:
    """The worker with every workflow and activity of the product registered."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[RolloutWorkflow],
        activities=ALL_ACTIVITIES,
        activity_executor=executor,
        max_concurrent_activities=64,
    )


def _runtime() -> Runtime | None:
    address = os.environ.get("ROLLOUT_WORKER_METRICS")
    if not address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def serve() -> None:
    client = await connect(_runtime())
    queue = task_queue()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="activity") as executor:
        worker = build_worker(client, queue, executor)
        log.info(
            "worker polling task queue %r on %s", queue, client.service_client.config.target_host
        )
        async with worker:
            await stop.wait()
            log.info("stopping: finishing running tasks")
    log.info("stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve())
    except RuntimeError as error:
        print(f"rollout-worker: {error}", file=sys.stderr)
        sys.exit(1)
