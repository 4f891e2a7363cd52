"""The Benchmark tab: browse the report folders under ``reports/`` and run a small suite from the page.

Browsing reads only the files a run leaves (run.json, summary.csv, grid.png, plots/, report.html), so a
published report folder shows here without its images. Runs from the page are capped at a handful of
prompts and use the demo's own models, through the same runner as ``python -m benchmarks run``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd

from ..bench.report import GRID_FILE, METRIC_TITLES, distance_cell, frame_table, metric_tables, metric_title
from ..bench.run import run_benchmark
from ..bench.suite import builtin_suites
from ..utils.markdown import markdown_table
from .context import DemoContext
from .validation import (UserError, checked_values, compare_entries, field_value, load_entries, user_errors,
                         validator)

MAX_PROMPTS = 12  # a page run samples at most this many prompts per model


def shown_folder(root: Path) -> str:
    """The reports folder as the page names it: relative to the working directory, else by its name alone,
    so a public demo does not tell visitors where it lives on the server."""
    try:
        return Path(root).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(root).name


def report_folders(root: Path) -> list[str]:
    """Run folders under `root` that have a summary, newest first."""
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / "summary.csv").is_file() and (p / "run.json").is_file()]
    return [p.name for p in sorted(folders, key=lambda p: (p / "summary.csv").stat().st_mtime, reverse=True)]


def describe_report(folder: Path) -> tuple[str, str | None, list[str], str | None]:
    """(Markdown with every per-category table, grid image, plot images, report.html) of one run folder."""
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    summary = pd.read_csv(folder / "summary.csv")
    models = ", ".join(f"`{m['name']}`" for m in run["models"])
    lines = [f"### {folder.name}: suite `{run['suite']}`", "",
             f"{len(run['items'])} prompts × seeds {run['seeds']} × {models}. Cells: mean [95% bootstrap CI].", ""]
    for metric, table in metric_tables(summary, run).items():
        lines += [f"**{metric_title(metric, run)}**", "", frame_table(table, "category"), ""]
    distances = summary[~summary["metric"].isin(METRIC_TITLES)]
    if not distances.empty:
        distances = distances.reindex(columns=[*distances.columns.union(["std", "n_reference"], sort=False)])
        rows = [(f"`{r.model}`", r.metric, distance_cell(r.metric, r.mean, r.ci_low, r.ci_high, r.std, r.n, r.n_reference))
                for r in distances.itertuples()]
        lines += ["**Distances to the reference set** (lower is better)", "",
                  markdown_table(["model", "metric", "value"], rows), ""]
    grid = folder / GRID_FILE
    html = folder / "report.html"
    return ("\n".join(lines), str(grid) if grid.is_file() else None, [str(p) for p in sorted((folder / "plots").glob("*.png"))],
            str(html) if html.is_file() else None)


def show_report(root: Path, name: str | None):
    if not name:
        return "No reports yet: run one below or with `python -m benchmarks run`.", None, [], None
    if name not in report_folders(root):
        raise UserError(f"There is no report “{name}” under {shown_folder(root)}/ (a run folder with run.json and "
                       "summary.csv).")
    return describe_report(root / name)


def folder_name(text: str | None, suite: str) -> str:
    """A safe folder name under reports/: letters, digits, '.', '_' and '-' only; default: suite + time."""
    name = (text or "").strip() or f"{suite}-{datetime.now():%Y%m%d-%H%M%S}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UserError(f"Name the report with letters, digits, '.', '_' or '-' (at most 64); got “{name}”.")
    return name


def build(ctx: DemoContext) -> None:
    root = ctx.reports_dir
    first = next(iter(report_folders(root)), None)
    shown = show_report(root, first)
    with gr.Row():
        chosen = gr.Dropdown(report_folders(root), value=first, label=f"Report folder (under {shown_folder(root)}/)", scale=3)
        refresh = gr.Button("↻ Refresh", scale=1)
    with gr.Row():
        tables = gr.Markdown(shown[0])
        with gr.Column():
            grid = gr.Image(shown[1], label="Side by side: same prompt and seed in each column", type="filepath",
                            elem_id="benchmark-grid")
            html = gr.File(shown[3], label="Self-contained HTML report")
    plots = gr.Gallery(shown[2], label="Per-category plots (95% CI)", columns=2, height="auto", object_fit="contain",
                       elem_id="benchmark-plots")
    with gr.Accordion("Run a small suite from this page", open=False):
        with gr.Row():
            suite_box = gr.Dropdown(list(builtin_suites()), value="shapes-test", label="Suite")
            limit_slider = gr.Slider(1, MAX_PROMPTS, value=6, step=1,
                                     label="Prompts (round-robin over categories; the command line runs more)")
        models_box = gr.Textbox(label="Models (entries as in the Compare tab)", value=f"{ctx.model},{ctx.model}@steps=10")
        name_box = gr.Textbox(label="Report name (a new folder under reports/; an existing one resumes)", value="")
        run_button = gr.Button("Run benchmark", variant="primary")

    fields = {"suite": suite_box, "limit": limit_slider, "models": models_box, "name": name_box}

    def checks(values: dict) -> dict:
        return {"suite": lambda: field_value(values["suite"], suite_box),
                "limit": lambda: field_value(values["limit"], limit_slider),
                "models": lambda: compare_entries(values["models"], ctx.sources, ctx.max_compare),
                "name": lambda: folder_name(values["name"], values["suite"])}

    def run(progress=gr.Progress(), **values):
        read = checked_values(checks(values))
        entries = load_entries(ctx.registry, read["models"])
        out = read["name"]
        with user_errors():
            run_benchmark(read["suite"], [model.name for model in entries], root / out, limit=read["limit"],
                          registry=ctx.registry, progress=False, sr_limit=2, features="efficientnet-lite0",
                          on_image=lambda done, total: progress((done, total), desc="sampling"))
        return gr.Dropdown(choices=report_folders(root), value=out), *describe_report(root / out)

    outputs = [tables, grid, plots, html]
    chosen.change(lambda name: show_report(root, name), chosen, outputs, api_name=False)
    refresh.click(lambda: gr.Dropdown(choices=report_folders(root)), None, chosen, api_name=False)
    run_button.click(run, None, [chosen, *outputs], inputs_kwargs=fields, validator=validator(fields, checks),
                     api_name="benchmark", **ctx.event_options())
