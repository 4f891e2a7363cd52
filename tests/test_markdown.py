"""One Markdown table writer: its exact output (report.md and the scripts' tables pin it) and no second one."""

from __future__ import annotations

import re
from pathlib import Path

from imagen_demo.utils.markdown import markdown_row, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_a_table_is_a_header_a_rule_and_rows():
    assert markdown_table(["model", "value"], [["`a`", 1], ["b", 0.5]]) == (
        "| model | value |\n|---|---|\n| `a` | 1 |\n| b | 0.5 |")
    assert markdown_table(["model", "value"]) + "\n" + markdown_row(["b", 2]) == "| model | value |\n|---|---|\n| b | 2 |"


def test_no_other_module_writes_a_table_rule():
    rule = re.compile(r"\|\s*---")
    writers = [p.relative_to(ROOT).as_posix() for folder in ("imagen_demo", "benchmarks") for p in (ROOT / folder).rglob("*.py")
               if rule.search(p.read_text(encoding="utf-8"))]
    assert writers == ["imagen_demo/utils/markdown.py"]
