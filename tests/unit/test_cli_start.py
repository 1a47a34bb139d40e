"""`rollout --help` and `rollout validate` load only what they use: no Temporal SDK, and for
the help no plan models either. How long they take is benchmarks/cli_start.py's to measure;
this checks the imports that made them slow stay out."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from starter.arguments import parser
from tests.unit.test_cli import VALID_PLAN

ROOT = Path(__file__).resolve().parents[2]
# A fresh interpreter runs the command, then says which modules it had loaded.
PROGRAM = """
import contextlib, io, json, sys
from starter.cli import run_command
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = run_command(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
HEAVY = ("temporalio", "aiohttp", "httpx", "rich", "activities", "workflows", "devstack")


def loaded(*argv: str, cwd: Path = ROOT) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    shown = json.loads(done.stdout.splitlines()[-1])
    return shown["code"], set(shown["modules"])


def tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("argv", [["--help"], ["start", "--help"], ["freeze", "--help"]])
def test_help_loads_neither_the_sdk_nor_the_models(argv: list[str]) -> None:
    code, modules = loaded(*argv)
    assert code == 0
    assert not tops(modules) & {*HEAVY, "pydantic", "yaml"}, sorted(tops(modules))
    assert not {m for m in modules if m.startswith("plans.") and m != "plans.errors"}


def test_init_help_loads_the_templates_but_not_the_sdk() -> None:
    code, modules = loaded("init", "--help")
    assert code == 0 and "plans.templates" in modules
    assert "temporalio" not in tops(modules)


def test_validate_loads_the_plan_models_only(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(VALID_PLAN))
    code, modules = loaded("validate", "plan.yaml", cwd=tmp_path)
    assert code == 0
    assert "plans.plan" in modules and "plans.release_plan" in modules
    assert not tops(modules) & set(HEAVY), sorted(tops(modules) & set(HEAVY))
    assert "plans.runtime.state" not in modules and "client.records" not in modules


def test_an_invalid_plan_still_exits_2_with_its_problems(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("service: shop\n")
    code, _ = loaded("validate", "plan.yaml", cwd=tmp_path)
    assert code == 2


# Which of the models the CLI's plan loading imports have built their validators by then.
BUILT_AT_IMPORT = """
import json, sys
import plans.experiment, plans.loading, plans.release_plan
from pydantic import BaseModel
print(json.dumps(sorted(
    f"{name}.{value.__name__}"
    for name, module in list(sys.modules.items()) if name.startswith("plans")
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, BaseModel)
    and value.__module__ == name and value.__pydantic_complete__
)))
"""


def test_the_plan_models_build_on_first_use_not_at_import() -> None:
    # validate builds the one schema of the model it validates (Plan, with what it holds),
    # not each model's at import: that was half of the command's time (defer_build).
    done = subprocess.run(
        [sys.executable, "-c", BUILT_AT_IMPORT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(done.stdout) == []


def _outcome(built: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed: object = sorted((k, repr(v)) for k, v in vars(built.parse_args(argv)).items())
        except SystemExit as end:
            parsed = end.code
    return parsed, out.getvalue(), err.getvalue()


def test_a_command_line_parses_the_same_with_only_its_command_built() -> None:
    # `rollout CMD ...` builds CMD's parser only (starter.parsing.OneCommand): its help, its
    # errors and what it parses are those of the whole parser; a word that is no command
    # still gets the whole list in its error.
    whole = parser()
    commands = next(a for a in whole._actions if isinstance(a, argparse._SubParsersAction))
    lines: list[list[str]] = [["valdate", "plan.yaml"], ["--help"]]
    for name, sub in commands.choices.items():
        lines += [[name, "--help"], [name], [name, "--bogus"], [name, "shop", "--json"]]
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                lines += [[name, inner, "--help"] for inner in action.choices]
    for argv in lines:
        first = None if argv[0].startswith("-") else argv[0]
        assert _outcome(parser(first), argv) == _outcome(parser(), argv), argv
