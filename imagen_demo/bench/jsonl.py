"""Append-only JSON-lines files that survive a kill: every append is flushed to disk, and a torn last line
(killed mid-write) is skipped when read and ended by the next append. Reading never writes, so a report can
read a run that another process is still writing, or a folder it may not write to."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _ends_mid_line(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def append_jsonl(path: Path, rows: list[dict]) -> None:
    start = "\n" if _ends_mid_line(path) else ""  # end a torn line so it cannot swallow the first new row
    with open(path, "a", encoding="utf-8") as f:
        f.write(start + "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        f.flush()
        os.fsync(f.fileno())
