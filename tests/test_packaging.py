"""pyproject.toml agrees with requirements.txt (the tested pins) and ships every file the package reads."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """PEP 503 normal form of a requirement's project name."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    return {_name(r): r.split("==", 1)[1].strip() for r in requirements if "==" in r}


def test_every_tested_pin_is_a_dependency_with_the_same_version():
    tested = _pins([line.split("#")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()])
    project = PYPROJECT["project"]
    declared = _pins(project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra])
    assert tested and {name: declared.get(name) for name in tested} == tested


def test_the_shipped_data_files_are_package_data():
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        data = [p.relative_to(ROOT / package).as_posix() for p in (ROOT / package).rglob("*")
                if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
        assert data, package
        assert [f for f in data if not any(fnmatch(f, pattern) for pattern in patterns)] == [], package
