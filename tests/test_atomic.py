"""atomic_dir under a crash between its two renames: the last complete copy is never lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imagen_demo.utils.atomic import atomic_dir, recover_dir

ROOT = Path(__file__).resolve().parents[1]
# Writes a new copy of argv[1], but the process dies right after the old copy was renamed away.
CRASH_BETWEEN_RENAMES = """
import os, sys
from imagen_demo.utils.atomic import atomic_dir
from pathlib import Path
target, real_rename = Path(sys.argv[1]), Path.rename
def rename(self, dst):
    if Path(dst) == target:
        os._exit(1)
    return real_rename(self, dst)
Path.rename = rename
with atomic_dir(target) as tmp:
    (tmp / "content.txt").write_text("new")
"""


def crash_while_replacing(target: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH_BETWEEN_RENAMES, str(target)], cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and not target.exists(), "the crash did not land between the renames"


def write(target: Path, text: str) -> None:
    with atomic_dir(target) as tmp:
        (tmp / "content.txt").write_text(text)


def test_a_crash_between_the_renames_leaves_the_old_copy_recoverable(tmp_path):
    target = tmp_path / "checkpoint"
    write(target, "old")
    crash_while_replacing(target)
    assert (recover_dir(target) / "content.txt").read_text() == "old"
    write(target, "newer")
    assert (target / "content.txt").read_text() == "newer"


def test_the_next_write_recovers_the_old_copy_before_anything_is_deleted(tmp_path):
    target = tmp_path / "checkpoint"
    write(target, "old")
    crash_while_replacing(target)
    with pytest.raises(RuntimeError):  # the next write fails too: the old copy must still be there
        with atomic_dir(target):
            raise RuntimeError("killed while writing")
    assert (target / "content.txt").read_text() == "old"
