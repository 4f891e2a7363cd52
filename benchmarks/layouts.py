"""Process × thread layouts on a CPU, for the benchmarks that time them side by side (train_parallelism,
run_parallelism): parsing "2x1", and the table of each layout's median rate with its ratio to the first."""

from __future__ import annotations

import argparse
import re
import statistics

from imagen_demo.utils.markdown import markdown_table


def layout(text: str) -> tuple[int, int]:
    """"2x1" -> (2 processes, 1 thread each)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise argparse.ArgumentTypeError(f"a layout is PROCESSESxTHREADS such as 2x1, got {text!r}")
    return int(match[1]), int(match[2])


def print_rates(rates: dict[tuple[int, int], list[float]], what: str, digits: int = 1) -> None:
    """The median of each layout's rounds (`what`: the column, e.g. "training images/s"), then each layout's ratio to
    the first one's."""
    medians = {lay: statistics.median(values) for lay, values in rates.items()}
    print(markdown_table(["processes × threads", what],
                         [(f"{processes} × {threads}", f"{rate:.{digits}f}") for (processes, threads), rate in medians.items()]))
    (base, base_rate), *others = medians.items()
    for (processes, threads), rate in others:
        print(f"{processes} × {threads} makes {rate / base_rate:.2f}x the {what} of {base[0]} × {base[1]}")
