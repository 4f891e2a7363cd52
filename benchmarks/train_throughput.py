"""Training images/s per stage for several recipes, measured side by side in one run.

Each stage of each recipe gets a real `StageTrainer` (its data, text encoder, loss weighting, optimizer, EMA and
memory format) in a throw-away run folder; the timed unit is one full training step. Recipes take turns round by
round, so a noisy machine slows them alike, and the median over rounds is reported. Usage::

    python -m benchmarks.train_throughput                       # today's recipe vs the first shipped one
    python -m benchmarks.train_throughput --recipes a.toml b.toml --steps 5 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from imagen_demo.training import load_recipe
from imagen_demo.training.trainer import StageTrainer
from imagen_demo.utils.markdown import markdown_table

DEFAULT_RECIPES = ("recipes/shapes-v1.toml", "recipes/shapes-default.toml")


def measure(recipe_paths: list[str], steps: int, rounds: int) -> list[dict]:
    """One row per (recipe, stage): preset, parameters, batch, and median images/s over the rounds."""
    rows, trainers = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(recipe_paths):
            recipe = dataclasses.replace(load_recipe(path), run_dir=f"{tmp}/{i}")
            for stage in range(1, len(recipe.stages) + 1):
                trainer = StageTrainer(recipe, stage, device="cpu", show_progress=False)
                trainer.train_step(0)  # warm-up: first-call allocations and caches
                trainers.append(trainer)
                config = trainer.config
                rows.append({"recipe": path, "stage": stage, "preset": config.preset,
                             "parameters": sum(p.numel() for p in trainer.unet.parameters()),
                             "batch": config.batch_size * config.gradient_accumulation, "rates": []})
        for _ in range(rounds):
            for trainer, row in zip(trainers, rows):
                start = time.perf_counter()
                for step in range(1, steps + 1):
                    trainer.train_step(step)
                row["rates"].append(row["batch"] * steps / (time.perf_counter() - start))
    return [{**row, "images_per_s": statistics.median(row.pop("rates"))} for row in rows]


def markdown(rows: list[dict]) -> str:
    return markdown_table(["recipe", "stage", "preset", "parameters", "batch", "training images/s"],
                          ([r["recipe"], r["stage"], r["preset"], f"{r['parameters'] / 1e6:.1f}M", r["batch"],
                            f"{r['images_per_s']:.1f}"] for r in rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES))
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per stage and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure(args.recipes, args.steps, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32; "
          f"median of {args.rounds} rounds x {args.steps} steps (SR stages: images are training crops)")
    print(markdown(rows))
    for stage in sorted({r["stage"] for r in rows}):
        first, *others = [r for r in rows if r["stage"] == stage]
        for r in others:
            print(f"stage {stage}: {r['recipe']} trains {r['images_per_s'] / first['images_per_s']:.2f}x the images/s "
                  f"of {first['recipe']}")


if __name__ == "__main__":
    main()
