"""Shapes-verifier accuracy on the held-out test split, per category, for the base stage and the full cascade.

Every prompt of `test_suite(n, seed)` is sampled once at the model's default settings (or those after `@`);
the base (64x64) image and the final (256x256) image are both checked with `imagen_demo.shapes.verify`, and
the wall-clock time of each full-cascade call (one image) is recorded. Each accuracy comes with its 95%
percentile-bootstrap interval over the prompts (at 20 prompts per category a category's interval is about
+-0.2 wide). Usage::

    python -m benchmarks.shapes_accuracy                        # the shipped default model
    python -m benchmarks.shapes_accuracy --model PATH --n-per-category 20 --out accuracy.json
    python -m benchmarks.shapes_accuracy --model default@guidance=7/1   # other sampling settings, same prompts
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import PIL.Image
import torch
from PIL import ImageDraw
from tqdm.auto import tqdm

from imagen_demo import ImagenPipeline
from imagen_demo.bench.metrics.statistics import bootstrap_ci
from imagen_demo.core.loading import DEFAULT_MODEL
from imagen_demo.registry import ModelRegistry
from imagen_demo.shapes import CATEGORIES, Spec, test_suite, verify
from imagen_demo.utils.markdown import markdown_table


def evaluate(pipe: ImagenPipeline, rows: list[dict], seed: int = 0, progress: bool = True,
             settings: dict | None = None) -> dict:
    """{'rows': per-prompt results with the checks each stage failed, 'accuracy', 'interval' (`summarise`),
    'disagreements' (`stage_disagreements`), 'seconds_per_image': median, 'images'}. `settings` are pipeline
    keywords (e.g. ``{"guidance_scale": [7.0, 1.0]}``) in place of the model's defaults."""
    results, seconds, images = [], [], []
    for i, row in enumerate(tqdm(rows, desc="shapes-test", disable=not progress)):
        spec = Spec.from_dict(row["spec"])
        start = time.perf_counter()
        out = pipe(row["prompt"], seed=seed + i, return_intermediates=True, **(settings or {}))
        seconds.append(time.perf_counter() - start)
        verdicts = {f"stage_{s + 1}": verify(spec, images[0]) for s, images in enumerate(out.stage_images)}
        failed = {stage: [f"{c.name}: {c.detail}" for c in v.checks if not c.passed] for stage, v in verdicts.items()}
        first, last = out.stage_images[0][0], out.stage_images[-1][0]
        upsampled = verify(spec, first.resize(last.size, PIL.Image.BICUBIC)).passed  # first stage at last size
        results.append({"prompt": row["prompt"], "category": row["category"], "relation": spec.relation is not None,
                        "seed": seed + i,
                        **{stage: v.passed for stage, v in verdicts.items()}, "failed_checks": failed,
                        "bicubic_first_stage": upsampled})
        images.append(last)
    return {"rows": results, **summarise(results), "disagreements": stage_disagreements(results),
            "seconds_per_image": statistics.median(seconds), "images": images}


def stage_disagreements(rows: list[dict]) -> dict:
    """{'lost': prompts the first stage passed and the last failed, with the checks the last failed and whether
    the first stage's image, bicubic-upsampled to the last's size, still passes (if not, the verifier reads that
    picture differently at the larger size, and the super-resolution stage is not what lost it); 'gained': the
    converse}. What the super-resolution stage changes, one prompt at a time."""
    stages = [k for k in rows[0] if k.startswith("stage_")]
    first, last = stages[0], stages[-1]
    return {
        "lost": [{"prompt": r["prompt"], "category": r["category"], "failed": r["failed_checks"][last],
                  "bicubic_passes": r["bicubic_first_stage"]} for r in rows if r[first] and not r[last]],
        "gained": [{"prompt": r["prompt"], "category": r["category"]} for r in rows if r[last] and not r[first]],
    }


POSITION_PARTS = {"position: absolute": False, "position: relation": True}  # reported beside the category


def summarise(rows: list[dict]) -> dict:
    """{'accuracy': {stage: {category: mean}}, 'interval': {stage: {category: [low, high]}}} of per-prompt results."""
    accuracy, interval = {}, {}
    for stage in (k for k in rows[0] if k.startswith("stage_")):
        passed = {c: [r[stage] for r in rows if r["category"] == c] for c in CATEGORIES}
        for part, relation in POSITION_PARTS.items():  # "at the top" and "above a square" are learned apart
            passed[part] = [r[stage] for r in rows if r["category"] == "position" and r["relation"] == relation]
        passed["overall"] = [r[stage] for r in rows]
        stats = {group: bootstrap_ci(values) for group, values in passed.items()}
        accuracy[stage] = {group: mean for group, (mean, _, _) in stats.items()}
        interval[stage] = {group: [low, high] for group, (_, low, high) in stats.items()}
    return {"accuracy": accuracy, "interval": interval}


PASS_COLOUR, FAIL_COLOUR = (0, 160, 0), (220, 0, 0)  # the frame around each picture in the sample grid


def sample_grid(report: dict, per_category: int = 3, side: int = 128) -> PIL.Image.Image:
    """Final images, one row per category (its first prompts), each captioned with its prompt and framed in green
    (every check passed) or red (PIL's default font has no check-mark glyph)."""
    cell = side + 28
    grid = PIL.Image.new("RGB", (per_category * side, len(CATEGORIES) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for r, category in enumerate(CATEGORIES):
        picks = [i for i, row in enumerate(report["rows"]) if row["category"] == category][:per_category]
        for c, i in enumerate(picks):
            row, last = report["rows"][i], list(report["accuracy"])[-1]
            grid.paste(report["images"][i].resize((side, side)), (c * side, r * cell))
            frame = PASS_COLOUR if row[last] else FAIL_COLOUR
            draw.rectangle((c * side, r * cell, (c + 1) * side - 1, r * cell + side - 1), outline=frame, width=3)
            draw.text((c * side + 2, r * cell + side + 1), row["prompt"][:24], fill="black")
            draw.text((c * side + 2, r * cell + side + 13), row["prompt"][24:48], fill="black")
    return grid


def accuracy_table(report: dict, sizes: list[int]) -> str:
    """Accuracy per category and stage, each as "mean [95% interval]"."""
    stages = list(report["accuracy"])
    header = ["category", *(f"stage {i + 1} ({size}×{size})" for i, size in enumerate(sizes))]

    def cell(stage: str, group: str) -> str:
        low, high = report["interval"][stage][group]
        return f"{report['accuracy'][stage][group]:.2f} [{low:.2f}, {high:.2f}]"

    groups = [group for category in CATEGORIES for group in (category, *(POSITION_PARTS if category == "position" else ()))]
    return markdown_table(header, ([group, *(cell(s, group) for s in stages)] for group in [*groups, "overall"]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="NAME[@settings] as in `python -m benchmarks run`, e.g. default@guidance=7/1")
    parser.add_argument("--n-per-category", type=int, default=10)
    parser.add_argument("--suite-seed", type=int, default=0, help="which held-out prompts")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the first prompt")
    parser.add_argument("--out", default=None, help="also write the full report as JSON")
    parser.add_argument("--grid", default=None, help="also save a grid of final images, one row per category (PNG)")
    args = parser.parse_args(argv)
    model = ModelRegistry().get(args.model)  # the entry's sampler and settings, read as `python -m benchmarks run` does
    pipe, settings = model.pipeline, model.call_settings
    rows = test_suite(args.n_per_category, seed=args.suite_seed)
    report = evaluate(pipe, rows, seed=args.seed, settings=settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; model {args.model}; "
          f"{len(rows)} held-out prompts; defaults {pipe.defaults}; overridden {model.settings or 'none'}")
    print(accuracy_table(report, [stage.size for stage in pipe.stages]))
    print(f"median seconds per {pipe.stages[-1].size}x{pipe.stages[-1].size} image (full cascade, batch 1): "
          f"{report['seconds_per_image']:.2f}")
    lost, gained = report["disagreements"]["lost"], report["disagreements"]["gained"]
    by_sr = sum(row["bicubic_passes"] for row in lost)
    print(f"the last stage lost {len(lost)} prompts the first passed ({by_sr} where bicubic upsampling of the first "
          f"stage's image still passes) and gained {len(gained)}")
    for row in lost:
        bicubic = "passes" if row["bicubic_passes"] else "fails too"
        print(f"  lost [{row['category']}] {row['prompt']!r} (bicubic {bicubic}): {'; '.join(row['failed'])}")
    if args.grid:
        sample_grid(report).save(args.grid)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({k: v for k, v in report.items() if k != "images"}, f, indent=2)


if __name__ == "__main__":
    main()
