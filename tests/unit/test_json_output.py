"""`rollout ... --json`: every printing command has it, the kept schemas still describe what the
models print, and the offline commands' output fits them. Shell completion from the parser.

The commands that need a server are checked on a real stack in
tests/integration/test_json_output.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from starter import answers
from starter.arguments import parser
from tests.json_schemas import SCHEMA_DIR, check, kept
from tests.unit.test_cli import INVALID_PLAN, VALID_PLAN, no_temporal, run, write_plan  # noqa: F401
from tests.unit.test_fleet_plan import fleet
from tests.unit.test_help import commands

ROLLOUT = str(Path(sys.executable).parent / "rollout")
# Commands that print no result of their own: they run until stopped, or print a script.
WITHOUT_JSON = {("demo",), ("alerts", "serve"), ("completion",)}


def test_every_command_that_prints_has_json() -> None:
    for words, _, sub in commands(parser()):
        if sub._subparsers is not None or words in WITHOUT_JSON:
            continue
        options = {o for action in sub._actions for o in action.option_strings}
        assert "--json" in options, f"rollout {' '.join(words)} has no --json"


def signature(schema: Any, defs: dict[str, Any]) -> Any:
    """What a (sub)schema says of a value's shape: types, fields, references followed once."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return {"$ref": schema["$ref"].rsplit("/", 1)[-1]}
        return {k: signature(v, defs) for k, v in schema.items() if k not in ("title", "default")}
    if isinstance(schema, list):
        return [signature(item, defs) for item in schema]
    return schema


def fields(schema: dict[str, Any]) -> dict[str, Any]:
    """Each field of each object the schema defines, as ``Model.field`` to its shape."""
    found: dict[str, Any] = {}
    defs = schema.get("$defs", {})
    for name, model in [("", schema), *defs.items()]:
        for field, sub in model.get("properties", {}).items():
            found[f"{name}.{field}"] = signature(sub, defs)
        for field in model.get("required", []):
            found[f"{name}.{field}!"] = "required"
    return found


@pytest.mark.parametrize("name", sorted(answers.SCHEMAS))
def test_the_kept_schema_still_describes_the_output(name: str) -> None:
    """A field scripts read is never renamed, retyped or dropped unnoticed; new ones may come.

    When this fails on purpose: `.venv/bin/python -m starter.answers docs/schemas`, and say
    in docs/json.md what changed.
    """
    now = fields(answers.schema(name))
    before = fields(kept(name))
    gone = {key: shape for key, shape in before.items() if now.get(key) != shape}
    assert not gone, f"{name}: changed or gone since docs/schemas/{name}.json: {sorted(gone)}"


def test_every_kept_schema_is_a_command_s() -> None:
    assert {path.stem for path in SCHEMA_DIR.glob("*.json")} == set(answers.SCHEMAS)


def test_validate_json_of_a_plan_a_release_and_a_broken_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["validate", "--json", write_plan(VALID_PLAN)]) == 0
    shown = check("validate", capsys.readouterr().out)
    assert shown["valid"] is True and shown["kind"] == "rollout"
    assert shown["workflow_id"] == "rollout-shop"
    assert [(s["name"], s["weight"], s["bake_s"]) for s in shown["stages"]] == [
        ("ten", 10, 300.0),
        ("half", 50, 5400.0),
        ("all", 100, 600.0),
    ]
    assert shown["stages"][0]["gates"] == ["errors"] and shown["stages"][1]["approval"] is True

    assert run(["validate", "--json", write_plan(fleet(), "fleet.yaml")]) == 0
    shown = check("validate", capsys.readouterr().out)
    assert shown["kind"] == "release" and shown["workflow_id"] == "release-checkout"
    assert len(shown["targets"]) == 4 and shown["waves"][1]["approval"] is True

    # An invalid plan: exit 2 as without --json, its problems as data on standard output.
    assert run(["validate", "--json", write_plan(INVALID_PLAN, "bad.yaml")]) == 2
    captured = capsys.readouterr()
    shown = check("validate", captured.out)
    assert shown["valid"] is False and len(shown["problems"]) >= 3
    assert any("weight" in problem for problem in shown["problems"])
    assert captured.err == ""


def test_validate_json_of_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", "--json", "nowhere.yaml"]) == 2
    shown = check("validate", capsys.readouterr().out)
    assert "cannot read nowhere.yaml" in shown["problems"][0]


def test_init_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["init", "shop", "--template", "fast", "--router", "envoy", "--json"]) == 0
    shown = check("init", capsys.readouterr().out)
    assert shown == {
        "file": "shop.yaml",
        "service": "shop",
        "template": "fast",
        "router": "envoy",
        "summary": shown["summary"],
    }
    assert Path("shop.yaml").exists() and shown["summary"].startswith("fast: ")


def test_dev_down_json_without_a_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["dev", "down", "--dir", str(tmp_path / "none"), "--json"]) == 0
    assert check("dev-down", capsys.readouterr().out) == {"stopped": []}


def test_a_command_that_cannot_reach_temporal_keeps_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --json changes what is printed, never the exit code: errors stay on standard error.
    assert run(["list", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot reach Temporal" in captured.err


# -- shell completion ---------------------------------------------------------------------------


def completion(shell: str) -> str:
    done = subprocess.run(
        [ROLLOUT, "completion", shell], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "rollout.bash"
    script.write_text(completion("bash"))
    # Ask bash itself, as a shell with the script installed would: COMP_WORDS up to the cursor.
    asks = {
        "rollout ": "COMP_WORDS=(rollout ''); COMP_CWORD=1",
        "rollout fr": "COMP_WORDS=(rollout fr); COMP_CWORD=1",
        "rollout status --": "COMP_WORDS=(rollout status --); COMP_CWORD=2",
        "rollout init x --template ": "COMP_WORDS=(rollout init x --template ''); COMP_CWORD=4",
    }
    answers_by_line = {}
    for line, words in asks.items():
        program = (
            f"source {script}; {words}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}};"
            " _shtab_rollout; printf '%s\\n' \"${COMPREPLY[@]}\""
        )
        done = subprocess.run(
            ["bash", "-c", program], capture_output=True, text=True, timeout=60, check=True
        )
        answers_by_line[line] = set(done.stdout.split())
    assert {"validate", "start", "status", "rollback", "freeze", "completion"} <= answers_by_line[
        "rollout "
    ]
    assert answers_by_line["rollout fr"] == {"freeze"}
    assert {"--json", "--watch", "--target"} <= answers_by_line["rollout status --"]
    assert {"safe", "fast", "hotfix-p0"} <= answers_by_line["rollout init x --template "]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_loads_in_zsh(tmp_path: Path) -> None:
    (tmp_path / "_rollout").write_text(completion("zsh"))
    program = (
        f"fpath=({tmp_path} $fpath); autoload -Uz compinit; compinit -u; autoload -Uz _rollout"
    )
    done = subprocess.run(["zsh", "-fc", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_zsh_completion_names_every_command() -> None:
    script = completion("zsh")
    assert script.startswith("#compdef rollout")
    for words, _, _ in commands(parser()):
        if len(words) == 1:
            assert f"    {words[0]}:'" in script, words


def test_completion_help_says_how_to_install_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["completion", "--help"]) == 0
    page = " ".join(capsys.readouterr().out.split())
    assert "rollout completion bash > ~/.local/share/bash-completion/completions/rollout" in page
    assert "rollout completion zsh > ~/.zfunc/_rollout" in page


def test_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate", "--json", write_plan(VALID_PLAN)]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)
    assert isinstance(parser().parse_args(["list", "--json"]), argparse.Namespace)
