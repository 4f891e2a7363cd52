"""Prompt suites: plain CSV / TSV / JSONL files with a prompt, a category and an optional shapes-world spec.

Built-in suites live in ``suites/`` beside this module (package data, so an installed wheel has them)
and are picked by name (``drawbench-style``, ``shapes-test``); any other file is read by the same loader,
which also understands the official DrawBench CSV (``Prompts,Category``) and PartiPrompts TSV
(``Prompt\tCategory\tChallenge\tNote``) because it matches column names case-insensitively and accepts
the plural ``Prompts``.

Every item gets an id hashed from its prompt, category and spec, so an edited suite keeps the ids of
unchanged items and a resumed run regenerates only what changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SUITES_DIR = Path(__file__).parent / "suites"
SUFFIXES = (".csv", ".tsv", ".jsonl")


@dataclass(frozen=True)
class SuiteItem:
    id: str
    prompt: str
    category: str
    spec: dict | None = None  # a shapes-world Spec as a dict: exact scoring by the verifier


def item_id(prompt: str, category: str, spec: dict | None) -> str:
    key = json.dumps([prompt, category, spec], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def builtin_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.iterdir()) if p.suffix in SUFFIXES}


def suite_path(name_or_file: str | Path) -> Path:
    builtin = builtin_suites()
    if str(name_or_file) in builtin:
        return builtin[str(name_or_file)]
    path = Path(name_or_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no suite {str(name_or_file)!r}: built-in suites are {', '.join(builtin)}, or give a "
                                f"{'/'.join(SUFFIXES)} file")
    return path


def _rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, {lower-cased column: value}) for every row of the file."""
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((number, {k.lower(): v for k, v in json.loads(line).items()}))
                except (json.JSONDecodeError, AttributeError) as err:
                    raise ValueError(f"{path}:{number}: not a JSON object ({err})") from err
        return rows
    frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    frame.columns = [c.strip().lower() for c in frame.columns]
    return [(i + 2, row) for i, row in enumerate(frame.to_dict("records"))]  # +2: header line, 1-based


def load_suite(name_or_file: str | Path, limit: int | None = None) -> list[SuiteItem]:
    """Read a suite; with `limit`, take items round-robin across categories so every category is covered."""
    path = suite_path(name_or_file)
    items, seen = [], {}
    for number, row in _rows(path):
        prompt = str(row.get("prompt", row.get("prompts", ""))).strip()
        if not prompt:
            raise ValueError(f"{path}:{number}: empty prompt (the file needs a 'prompt' column)")
        category = str(row.get("category") or "all").strip()
        spec = row.get("spec") or None
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: the spec column is not JSON ({err})") from err
        item = SuiteItem(item_id(prompt, category, spec), prompt, category, spec)
        if item.id in seen:
            raise ValueError(f"{path}:{number}: repeats line {seen[item.id]} ({prompt!r})")
        seen[item.id] = number
        items.append(item)
    if not items:
        raise ValueError(f"suite {path} has no prompts")
    return items if limit is None else round_robin(items, limit)


def round_robin(items: list[SuiteItem], limit: int) -> list[SuiteItem]:
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    by_category: dict[str, list[SuiteItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    picked, depth = [], 0
    while len(picked) < min(limit, len(items)):
        for group in by_category.values():
            if depth < len(group) and len(picked) < limit:
                picked.append(group[depth])
        depth += 1
    return picked
