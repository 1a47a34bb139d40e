"""The Python API as a program outside the project meets it: a wheel with py.typed in every
package, and mypy --strict accepting docs/python-api.md's example. (The example runs against
a real stack in tests/integration/test_scripting.py.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import client.api

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("plans", "client", "activities", "workflows", "worker", "starter", "devstack")


def example() -> str:
    page = (ROOT / "docs" / "python-api.md").read_text()
    found = re.search(r"```python\n(.*?)```", page, re.S)
    assert found
    return found.group(1)


def test_the_build_ships_py_typed_in_every_package(tmp_path: Path) -> None:
    # What setuptools puts into the wheel (build_py: the packages and their package data),
    # built from a copy so that the checkout stays as it is, and offline.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in (*PACKAGES, "receiver", "demo"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = tmp_path / "built"
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()",
         "build_py", "--build-lib", str(built)],
        check=True, capture_output=True, timeout=300, cwd=source,
    )  # fmt: skip
    for package in (*PACKAGES, "receiver", "demo"):
        assert (built / package / "py.typed").is_file(), package
    assert (built / "client" / "api.py").is_file()


def test_mypy_strict_accepts_the_docs_example(tmp_path: Path) -> None:
    program = tmp_path / "example.py"
    program.write_text(example())
    # As docs/python-api.md says: python-dateutil ships no types (or: types-python-dateutil).
    (tmp_path / "mypy.ini").write_text("[mypy]\n[mypy-dateutil.*]\nignore_missing_imports = True\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--config-file", str(tmp_path / "mypy.ini"), str(program)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_name_the_module_exports_exists() -> None:
    missing = [name for name in client.api.__all__ if not hasattr(client.api, name)]
    assert not missing
    assert callable(client.api.Rollouts.connect) and callable(client.api.end_process)
