"""The one Markdown table writer, so the reports, the benchmark scripts and the demo print tables alike."""

from __future__ import annotations

from collections.abc import Iterable


def markdown_row(cells: Iterable) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(header: list, rows: Iterable[Iterable] = ()) -> str:
    """Header, rule and rows; without rows, the header and rule alone, for a caller that prints rows as they come."""
    return "\n".join([markdown_row(header), "|---" * len(header) + "|", *map(markdown_row, rows)])
