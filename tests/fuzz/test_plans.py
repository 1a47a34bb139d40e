"""Generated plans, good and bad, through parse_plan and the `rollout` CLI (in process).

Every invalid plan is refused with exit code 2 and a message naming the wrong field, no
traceback, and `rollout start` never reaches Temporal; every valid plan is accepted.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plans import Plan, PlanError, parse_plan
from starter import cli
from tests.fuzz.plans import Broken, broken_plans, not_a_mapping, valid_plans

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Nothing answers on port 1: a CLI that tried to reach Temporal would fail with exit 1.
NOWHERE = {"TEMPORAL_ADDRESS": "127.0.0.1:1", "ROLLOUT_DIR": "/nonexistent/rollout-dir"}
_FILES = Path(tempfile.mkdtemp(prefix="fuzz-plans-"))
atexit.register(shutil.rmtree, _FILES, True)


def names_field(problems: list[str], field: str) -> bool:
    return any(p.startswith(field) for p in problems)


def write(data: Any) -> Path:
    path = _FILES / f"{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class Run:
    """One `rollout ...` run in process: its exit code and what it printed."""

    def __init__(self, *argv: str) -> None:
        out, err = io.StringIO(), io.StringIO()
        code: Any = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main(list(argv))
            except SystemExit as exit:
                code = exit.code
        self.code = code
        self.out = out.getvalue()
        self.err = err.getvalue()
        # Rich wraps at the console's width: compare words, not lines.
        self.said = " ".join((self.out + " " + self.err).split())


@contextlib.contextmanager
def temporal_out_of_reach() -> Iterator[mock.MagicMock]:
    """TEMPORAL_ADDRESS points nowhere, and any attempt to connect is counted."""
    from temporalio.client import Client

    real = Client.connect
    calls = mock.MagicMock()

    async def counted(*args: Any, **kwargs: Any) -> Client:
        calls(*args, **kwargs)
        return await real(*args, **kwargs)

    with mock.patch.dict(os.environ, NOWHERE), mock.patch.object(Client, "connect", counted):
        yield calls


@FUZZ
@given(valid_plans())
def test_every_valid_plan_is_accepted_and_survives_the_trip_to_the_workflow(
    data: dict[str, Any],
) -> None:
    plan = parse_plan(data)
    assert plan.service == data["service"] and len(plan.stages) == len(data["stages"])
    # The workflow receives the plan as JSON: it must come back the same.
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert parse_plan(plan.model_dump(mode="json")) == plan


@FUZZ
@given(broken_plans())
def test_every_broken_plan_is_refused_naming_its_field(broken: Broken) -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan(broken.data)
    problems = refused.value.problems
    assert problems and names_field(problems, broken.field), (broken.what, problems)
    assert "Traceback" not in str(refused.value)
    assert len(str(refused.value)) < 20_000


@FUZZ
@given(st.one_of(valid_plans().map(lambda d: Broken(d, "", "valid")), broken_plans()))
def test_rollout_validate_exits_0_or_2_and_names_the_field(case: Broken) -> None:
    run = Run("validate", str(write(case.data)))
    assert "Traceback" not in run.said
    if case.what == "valid":
        assert run.code == 0, run.said
        assert run.said.startswith("ok:")
    else:
        assert run.code == 2, run.said
        assert run.said.startswith("error:") and "is not valid" in run.said
        assert re.search(rf"- {re.escape(case.field)}", run.said), (case.what, run.said)


@FUZZ
@given(broken_plans())
def test_rollout_start_refuses_a_broken_plan_before_reaching_temporal(broken: Broken) -> None:
    path = write(broken.data)
    with temporal_out_of_reach() as connects:
        run = Run("start", str(path))
    assert run.code == 2, run.said
    assert "Traceback" not in run.said and "cannot reach Temporal" not in run.said
    assert re.search(rf"- {re.escape(broken.field)}", run.said), (broken.what, run.said)
    assert connects.call_count == 0


@settings(FUZZ, max_examples=25)
@given(valid_plans())
def test_rollout_start_takes_a_valid_plan_to_temporal(data: dict[str, Any]) -> None:
    with temporal_out_of_reach() as connects:
        run = Run("start", str(write(data)))
    # The plan passed: the CLI went on to connect, and says it cannot reach the server.
    assert run.code == 1, run.said
    assert "cannot reach Temporal at 127.0.0.1:1" in run.said and "Traceback" not in run.said
    assert connects.call_count == 1


@FUZZ
@given(
    st.one_of(
        not_a_mapping().map(lambda v: yaml.safe_dump(v)),
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    )
)
def test_any_file_that_is_no_plan_is_refused_without_a_traceback(text: str) -> None:
    path = _FILES / f"{uuid.uuid4().hex}.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with temporal_out_of_reach() as connects:
        for command in ("validate", "start"):
            run = Run(command, str(path))
            assert run.code == 2, run.said
            assert run.said.startswith("error:") and "Traceback" not in run.said
    assert connects.call_count == 0


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_plan_in_another_encoding_is_refused_with_the_way_out(encoding: str) -> None:
    path = _FILES / f"{uuid.uuid4().hex}.yaml"
    path.write_bytes("service: chéckout\nstable: a\n".encode(encoding))
    run = Run("validate", str(path))
    assert run.code == 2 and "UTF-8" in run.said and "Traceback" not in run.said
