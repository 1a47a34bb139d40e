"""Hooks in a plan: what loads, what is refused at load time and why; the receiver's check."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rich.console import Console

from plans import RolloutState, RolloutStatus, parse_plan
from plans.governance.hook_signing import signature_headers
from plans.hooks import Hook, HookPayload, payload_body, sign, verify_signature
from plans.runtime.state import AuditEvent
from starter.render import audit_table
from tests.unit.test_plans import minimal, only_problem


def with_hooks(*hooks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    data["hooks"] = list(hooks)
    data.update(extra)
    return data


def hook(**fields: Any) -> dict[str, Any]:
    return {"name": "cab", "on": "before_stage", "url": "https://cab.example/approve", **fields}


def test_a_plan_with_hooks_and_smoke_loads() -> None:
    plan = parse_plan(
        with_hooks(
            hook(url="https://cab.example/$service/approve?stage=${stage}", stages=["all"]),
            hook(name="tests", on="before_promote", mode="check", failure_limit=2, on_fail="pause"),
            hook(name="down", on="on_rollback", mode="check", secret_env="DOWN_SECRET"),
            hook(name="chat", on="event", mode="notify", events=["rolled_back", "promoted"]),
            smoke={"url": "http://10.0.0.7:8081/health", "expect_body": "ok", "requests": 5},
        )
    )
    assert [h.name for h in plan.hooks] == ["cab", "tests", "down", "chat"]
    assert plan.hooks[0].timeout == timedelta(seconds=10) and plan.hooks[0].retries == 2
    assert plan.hooks[0].runs_before("all") and not plan.hooks[0].runs_before("ten")
    assert plan.smoke is not None and plan.smoke.expect_status == 200


def test_a_plan_without_hooks_reads_as_before() -> None:
    plan = parse_plan(minimal())
    assert plan.hooks == [] and plan.smoke is None
    assert "hooks" not in plan.model_dump(exclude_defaults=True)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://$service.example/approve", "placeholders may only stand in the path"),
        ("https://cab.example:${stage}/x", "placeholders may only stand in the path"),
        ("http://user:pw@cab.example/x", "no user or password"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("gopher://cab.example/x", "must start with http:// or https://"),
        ("https://cab.example/$token", "unknown placeholder(s) ['token']"),
        ("https://cab.example/a$", "a '$' that is no placeholder"),
        ("https://cab.example:99999/x", "the port must be 1-65535"),
    ],
)
def test_unsafe_hook_urls_are_refused(url: str, said: str) -> None:
    problem = only_problem(with_hooks(hook(url=url)))
    assert problem.startswith("hooks.0.url:") and said in problem


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (
            {"on": "after_deploy"},
            "hooks.0.on: 'after_deploy' is not a hook point: use before_rollout",
        ),
        ({"mode": "maybe"}, "hooks.0.mode: 'maybe' is not a hook mode: use gate, check or notify"),
        ({"secret_env": "MY-SECRET"}, "'MY-SECRET' is not an environment variable name"),
        ({"headers_env": {"Authorization": "1TOKEN"}}, "'1TOKEN' is not an environment variable"),
        ({"headers_env": {"X Bad": "TOKEN"}}, "'X Bad' is not a header name"),
        ({"headers_env": {"X-Rollout-Signature": "T"}}, "is set by the rollout itself"),
        ({"on": "event"}, "on: event needs events"),
        ({"on": "on_rollback"}, "on: on_rollback comes too late to hold: use mode: check"),
        ({"failure_limit": 3}, "failure_limit and on_fail apply to mode: check hooks only"),
        ({"stages": ["nope"]}, "hooks.0.stages: unknown stage 'nope' (stages: ten, all)"),
        ({"timeout": "0s"}, "timeout must be more than 0 and at most 10m"),
        ({"method": "DELETE"}, "hooks.0.method"),
    ],
)
def test_bad_hooks_say_what_to_fix(fields: dict[str, Any], said: str) -> None:
    problem = only_problem(with_hooks(hook(**fields)))
    assert said in problem


def test_hook_names_are_unique() -> None:
    problem = only_problem(with_hooks(hook(), hook(on="before_promote")))
    assert problem == "hooks: names must be unique, repeated: cab"


def test_smoke_urls_are_checked_like_hooks() -> None:
    problem = only_problem(with_hooks(smoke={"url": "ftp://canary/health"}))
    assert problem.startswith("smoke.url:") and "http:// or https://" in problem


def payload() -> HookPayload:
    return HookPayload(
        hook="cab",
        mode="gate",
        phase="before_stage",
        rollout_id="rollout-shop",
        run_id="r1",
        service="shop",
        versions={"stable": "blue", "canary": "green", "version": "v2"},
        stage="ten",
        stage_index=0,
        current_weight=0,
        next_weight=10,
        idempotency_key="rollout-shop/r1/cab/before_stage/0",
        at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
    )


def test_the_signature_is_hmac_sha256_over_the_exact_body() -> None:
    body = payload_body(payload())
    assert body == payload_body(payload())  # the same payload, the same bytes
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert sign(body, "k3y") == f"sha256={expected}"
    assert verify_signature(body, f"sha256={expected}", "k3y")
    assert not verify_signature(body, f"sha256={expected}", "other")
    assert not verify_signature(body.replace(b'"ten"', b'"all"'), f"sha256={expected}", "k3y")
    assert not verify_signature(body, None, "k3y") and not verify_signature(body, expected, "k3y")
    assert not verify_signature(body, sign(body, ""), "")


def hooks_page() -> str:
    return (Path(__file__).parents[2] / "docs" / "hooks.md").read_text(encoding="utf-8")


def test_the_docs_example_loads_and_its_verify_snippet_agrees() -> None:
    section = hooks_page()
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    stages = [{"name": "ten", "weight": 10}, {"name": "full", "weight": 100}]
    plan = parse_plan({**minimal(), "stages": stages, **yaml.safe_load(example)})
    assert len(plan.hooks) == 5 and plan.smoke is not None
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # the few lines a receiver copies
    body, now = payload_body(payload()), datetime.now(UTC)
    new, old = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    headers = signature_headers("rollout-shop/r1/cab", body, [f"whsec_{new}", f"whsec_{old}"], now)
    for secret in (new, old):
        assert scope["verify"](body, headers, base64.b64decode(secret))
    assert not scope["verify"](body, headers, b"other-key")
    assert not scope["verify"](body + b" ", headers, base64.b64decode(new))
    stale = signature_headers(
        "rollout-shop/r1/cab", body, [f"whsec_{new}"], now - timedelta(minutes=6)
    )
    assert not scope["verify"](body, stale, base64.b64decode(new))
    garbage = {
        "webhook-id": "\u00e9",
        "webhook-timestamp": "\u0661",
        "webhook-signature": "v1,\udcff",
    }
    assert not scope["verify"](body, garbage, base64.b64decode(new))


def test_a_hook_answer_with_brackets_shows_as_written_in_the_audit_trail() -> None:
    text = "gate hook cab at before_stage (ask 1): answered 403: [/] [bold]no[/bold]"
    status = RolloutStatus(
        service="shop",
        version="v2",
        state=RolloutState.BAKING,
        stage_index=0,
        stage_name="ten",
        stage_count=2,
        canary_weight=10,
        paused=False,
        bake_total_s=60,
        bake_elapsed_s=0,
        bake_remaining_s=60,
        awaiting_approval=False,
        events=[AuditEvent(at=datetime(2026, 11, 22, tzinfo=UTC), kind="hook", text=text)],
    )
    console = Console(width=200, record=True)
    console.print(audit_table(status))
    assert text in console.export_text()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
            st.text(alphabet="ab.:$/@[]{}?#%0189", max_size=40),
        ),
    )
)
def test_any_hook_url_loads_safely_or_is_refused_in_words(url: str) -> None:
    try:
        loaded = Hook(name="h", on="before_rollout", url=url)
    except ValidationError as error:
        assert "url" in str(error)
        return
    parts = urlsplit(loaded.url)
    assert parts.scheme in ("http", "https") and parts.hostname and "$" not in parts.netloc
