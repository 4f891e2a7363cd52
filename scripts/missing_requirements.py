"""Print the pinned requirements that the running Python lacks (or has at another version), one a line; exit 1 when
there are any. Standard library only, so it runs on a fresh machine before anything is installed: scripts/install
--if-missing uses it to install only when something is missing.

    python scripts/missing_requirements.py requirements.txt requirements-nodeps.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def pins(path: Path) -> list[tuple[str, str]]:
    """(name, version) of every ``name==version`` line of a requirements file."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [tuple(part.strip() for part in line.split("==", 1)) for line in lines if "==" in line]


def missing(files: list[Path]) -> list[str]:
    out = []
    for name, wanted in (pin for path in files for pin in pins(path)):
        try:
            found = version(name)
        except PackageNotFoundError:
            found = None
        if found != wanted:
            out.append(f"{name}=={wanted} ({f'found {found}' if found else 'not installed'})")
    return out


if __name__ == "__main__":
    lacking = missing([Path(arg) for arg in sys.argv[1:]])
    for line in lacking:
        print(line)
    sys.exit(1 if lacking else 0)
