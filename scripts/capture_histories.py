"""Export histories of today's workflow from real runs, for the replay test.

Starts the dev stack in a temporary folder, runs three short rollouts on it (one
promoted, one rolled back by its gate, one that continues-as-new mid-bake), exports
each history with `temporal workflow show --output json` into tests/histories/ and stops
the stack. Run it (with --notify, then --hooks, then --leases) whenever the workflow changes
in a way recorded histories would not replay on: raise HISTORY_VERSION (plans/runtime/versions.py),
drop the histories of the version before and record this one's (docs/upgrading.md).

The promoted run also meets a drift (HAProxy's canary weight set to 0 behind its back),
and a fourth run is refused because the promoted one owns the same backend. A fifth
(``matched``) sends internal users first by a header match, meets a drift of its match
(the map cleared behind its back), moves on to a stage without match and is rolled back.
With `--notify` every plan also tells a webhook and an apprise channel (a local receiver
that answers 200), so the histories hold the notify activities of each event. With
`--hooks` it records only two runs with hooks and a smoke check (``hooks_promoted``: a gate
that answers 202 before it says yes, at the end of a stage that stays checked, a check, a
notify and an event hook; ``hooks_rolled_back``: a gate that refuses, and an on_rollback
hook after the restore), served by a local receiver. With `--leases` it records only two
target leases into tests/histories/lease/ (``released`` by a promoted rollout, ``restored``:
stable put back after its owner was terminated).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import devstack  # noqa: E402
from activities.routers.haproxy import HAProxyRuntime  # noqa: E402
from client import operations  # noqa: E402
from plans import RolloutState, parse_plan  # noqa: E402
from tests.stack_plans import error_rate_plan  # noqa: E402

OUT = ROOT / "tests" / "histories"
TEMPORAL = str(Path(sys.executable).parent / "temporal")


NOTIFY: dict[str, Any] = {}


def plan(info: devstack.StackInfo, service: str, stages: list[dict[str, Any]]) -> Any:
    data = error_rate_plan(
        info, service, stages, window="5s", failure_limit=2, inconclusive_limit=10
    )
    if NOTIFY:
        data["notify"] = NOTIFY
    return parse_plan(data)


def receive_notifications() -> None:
    """A local receiver for --notify: answers 200 to every POST; the worker inherits the URLs."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    os.environ["HISTORY_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hook"
    os.environ["HISTORY_TEAM_URL"] = f"json://127.0.0.1:{port}/team"
    NOTIFY.update(
        webhook_url_env="HISTORY_WEBHOOK_URL",
        channels=[{"name": "team", "url_env": "HISTORY_TEAM_URL"}],
    )


def export(info: devstack.StackInfo, workflow_id: str, run_id: str, name: str) -> None:
    text = subprocess.run(
        [
            TEMPORAL,
            "workflow",
            "show",
            "--address",
            info.temporal_address,
            "--workflow-id",
            workflow_id,
            "--run-id",
            run_id,
            "--output",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (OUT / f"{name}.json").write_text(text)
    print(f"wrote tests/histories/{name}.json")


async def capture(info: devstack.StackInfo, prefix: str) -> None:
    client = await Client.connect(info.temporal_address, data_converter=pydantic_data_converter)
    directory = Path(info.dir)
    devstack.fault(directory, 0.0, 0)
    quick = [
        {"name": "ten", "weight": 10, "bake": "6s", "check_every": "1s"},
        {"name": "full", "weight": 100, "bake": "5s", "check_every": "1s"},
    ]
    promoted = plan(info, "history-promoted", quick)
    handle = await operations.start_rollout(client, promoted, info.task_queue)
    await handle.signal("pause", {"by": "ana", "reason": "history"})
    await handle.signal("resume", {"by": "ana", "reason": "history"})
    while (await operations.status(client, promoted.service)).state != RolloutState.BAKING:
        await asyncio.sleep(0.2)
    router = HAProxyRuntime(promoted.router)
    await asyncio.to_thread(router.set_weight, "canary", 0)
    refused = plan(info, "history-refused", quick)
    other = await operations.start_rollout(client, refused, info.task_queue)
    with contextlib.suppress(WorkflowFailureError):
        await other.result()
    try:
        await handle.result()
    except WorkflowFailureError as error:
        raise SystemExit(f"the promoted run failed: {error.cause}") from None
    export(info, promoted.workflow_id, handle.result_run_id or "", prefix + "promoted")
    export(info, refused.workflow_id, other.result_run_id or "", prefix + "refused")

    failing = plan(
        info,
        "history-rolled-back",
        [{"name": "half", "weight": 50, "bake": "1m", "check_every": "1s"}],
    )
    devstack.fault(directory, 0.6, 0)
    handle = await operations.start_rollout(client, failing, info.task_queue)
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    devstack.fault(directory, 0.0, 0)
    await asyncio.sleep(8)  # let the errors leave the gate's 5s window
    export(info, failing.workflow_id, handle.result_run_id or "", prefix + "rolled_back")

    await capture_matched(client, info, prefix)

    chained = plan(info, "history-continued", quick)
    handle = await operations.start_rollout(client, chained, info.task_queue, checks_per_run=2)
    await handle.result()
    export(
        info, chained.workflow_id, handle.first_execution_run_id or "", prefix + "continued_as_new"
    )


async def capture_matched(client: Client, info: devstack.StackInfo, prefix: str) -> None:
    match = {"header": "x-user-group", "exact": "internal"}
    # Nobody sends the header here, so the canary's error rate has no data at 0%: no gates.
    internal = {"name": "internal", "weight": 0, "bake": "6s", "check_every": "1s", "gates": []}
    data = error_rate_plan(
        info,
        "history-matched",
        [
            {**internal, "match": match},
            {"name": "ten", "weight": 10, "bake": "1m", "check_every": "1s"},
        ],
        window="5s",
        failure_limit=2,
        inconclusive_limit=100,
    )
    data["router"]["match_map"] = info.haproxy_match_map
    matched = parse_plan(data)
    handle = await operations.start_rollout(client, matched, info.task_queue)
    while (await operations.status(client, matched.service)).state != RolloutState.BAKING:
        await asyncio.sleep(0.2)
    router = HAProxyRuntime(matched.router)  # type: ignore[arg-type]
    await asyncio.to_thread(router.command, f"clear map {info.haproxy_match_map}")
    while (status := await operations.status(client, matched.service)).stage_index < 1:
        if status.state.final:
            raise SystemExit(f"the matched run ended early: {status.reason}")
        await asyncio.sleep(0.2)
    await handle.signal("rollback", {"by": "ana", "reason": "history"})
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    export(info, matched.workflow_id, handle.result_run_id or "", prefix + "matched")


def receive_hooks() -> str:
    """A local receiver for --hooks: /later answers 202 to a call's first ask, /no 403, else 200."""
    asked: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.headers.get("Idempotency-Key", "")
            status = 200
            if self.path.startswith("/no"):
                status = 403
            elif self.path.startswith("/later") and key not in asked:
                asked.add(key)  # the first ask of each call waits
                status = 202
            answer = b'{"retry_after": 1}' if status == 202 else b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["HISTORY_HOOK_SECRET"] = "history-secret"
    return f"http://127.0.0.1:{server.server_address[1]}"


async def capture_hooks(info: devstack.StackInfo, prefix: str, url: str) -> None:
    client = await Client.connect(info.temporal_address, data_converter=pydantic_data_converter)
    devstack.fault(Path(info.dir), 0.0, 0)
    quick = [
        {"name": "ten", "weight": 10, "bake": "6s", "check_every": "1s"},
        {"name": "full", "weight": 100, "bake": "5s", "check_every": "1s"},
    ]
    signed = {"secret_env": "HISTORY_HOOK_SECRET"}
    hooks = [
        {"name": "tell", "on": "before_rollout", "mode": "notify", "url": f"{url}/tell"},
        {"name": "cab", "on": "before_stage", "stages": ["full"], "url": f"{url}/later", **signed},
        {"name": "tests", "on": "before_promote", "mode": "check", "url": f"{url}/tests"},
        {"name": "log", "on": "event", "mode": "notify", "events": ["promoted"], "url": url},
    ]
    data = error_rate_plan(
        info, "history-hooks", quick, window="5s", failure_limit=2, inconclusive_limit=10
    )
    data["smoke"] = {"url": info.canary_url + "healthz", "expect_body": "ok"}
    promoted = parse_plan({**data, "hooks": hooks})
    handle = await operations.start_rollout(client, promoted, info.task_queue)
    await handle.result()
    export(info, promoted.workflow_id, handle.result_run_id or "", prefix + "hooks_promoted")

    hooks = [
        {"name": "cab", "on": "before_stage", "stages": ["full"], "url": f"{url}/no"},
        {"name": "down", "on": "on_rollback", "mode": "check", "url": f"{url}/down"},
    ]
    refused = parse_plan({**data, "service": "history-hooks-refused", "hooks": hooks})
    handle = await operations.start_rollout(client, refused, info.task_queue)
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    export(info, refused.workflow_id, handle.result_run_id or "", prefix + "hooks_rolled_back")


async def lease_run(client: Client, lease_id: str) -> str:
    """The run id of the target's lease that closed last, once no lease runs."""
    for _ in range(600):
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{lease_id}'")]
        if runs and all(r.close_time is not None for r in runs):
            return max(runs, key=lambda r: r.close_time or r.start_time).run_id
        await asyncio.sleep(0.1)
    raise SystemExit(f"the lease {lease_id} did not end")


async def capture_leases(info: devstack.StackInfo, prefix: str) -> None:
    """A lease released by a promoted rollout, and one that put stable back after a terminate."""
    client = await Client.connect(info.temporal_address, data_converter=pydantic_data_converter)
    quick = [{"name": "ten", "weight": 10, "bake": "6s", "check_every": "1s"}]
    promoted = plan(info, "lease-promoted", quick)
    handle = await operations.start_rollout(client, promoted, info.task_queue)
    await handle.result()
    lease_id = promoted.target_lease_id
    export(info, lease_id, await lease_run(client, lease_id), f"lease/{prefix}released")
    half = [{"name": "half", "weight": 50, "bake": "1m", "check_every": "1s"}]
    terminated = plan(info, "lease-terminated", half)
    handle = await operations.start_rollout(client, terminated, info.task_queue)
    while (await operations.status(client, terminated.service)).state != RolloutState.BAKING:
        await asyncio.sleep(0.2)
    await handle.terminate("history: the lease puts stable back")
    export(info, lease_id, await lease_run(client, lease_id), f"lease/{prefix}restored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="", help="put before each file's name")
    parser.add_argument("--notify", action="store_true", help="plans tell two channels")
    parser.add_argument("--hooks", action="store_true", help="only two runs with hooks")
    parser.add_argument("--leases", action="store_true", help="only two target leases")
    args = parser.parse_args()
    prefix = args.prefix
    # The plans name HISTORY_* variables: the stack's worker gives plans those, as a
    # deployment would through its allowlist.
    os.environ["ROLLOUT_PLAN_SECRETS"] = "HISTORY_*"
    if args.notify:
        receive_notifications()
    hooks_url = receive_hooks() if args.hooks else ""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        info = devstack.up(Path(folder))
        try:
            if args.leases:
                (OUT / "lease").mkdir(exist_ok=True)
                asyncio.run(capture_leases(info, prefix))
            elif hooks_url:
                asyncio.run(capture_hooks(info, prefix, hooks_url))
            else:
                asyncio.run(capture(info, prefix))
        finally:
            devstack.down(Path(folder))


if __name__ == "__main__":
    main()
