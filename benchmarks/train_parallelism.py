"""Training images/s of one stage on the CPU: one process with every core's threads, or one process per core.

Each layout runs the real training command (`python -m imagen_demo train`, or `torchrun` for several processes)
for a fixed time on a throw-away copy of the recipe, continuing from a pipeline folder so the data stream is the
one a continued run sees (every caption category, the text encoder busy). Layouts take turns round by round so a
noisy machine slows them alike; the rate is images per second of wall time after the first steps (start-up and
first-call allocations excluded, checkpoint saves included). Usage::

    python -m benchmarks.train_parallelism                     # the shipped recipe's base, 1x2 vs 2x1
    python -m benchmarks.train_parallelism --layouts 1x2 2x1 --minutes 1.5 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.layouts import layout, print_rates
from imagen_demo.training import load_recipe

SKIP_STEPS = 3  # start-up and first-call allocations


def throwaway_recipe(recipe: Path, run_dir: Path) -> Path:
    """The recipe with its run folder moved and its periodic evaluation off (training steps only)."""
    text = re.sub(r"(?m)^run_dir = .*$", f'run_dir = "{run_dir}"', recipe.read_text())
    text = re.sub(r"(?m)^eval_every = .*$", "eval_every = 0", text)
    path = run_dir.with_suffix(".toml")
    path.write_text(text)
    return path


def run_layout(recipe: Path, stage: int, processes: int, threads: int, minutes: float, init_from: str | None,
               folder: Path) -> float:
    """Train for `minutes` in this layout; images per second of wall time after SKIP_STEPS steps."""
    config = throwaway_recipe(recipe, folder)
    launcher = [sys.executable, "-m", "imagen_demo"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m", "imagen_demo"]
    command = [*launcher, "train", "--config", str(config), "--stage", str(stage), "--device", "cpu",
               "--max-minutes", str(minutes), *(["--init-from", init_from] if init_from else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    with (folder / f"stage_{stage}" / "loss.csv").open() as f:
        rows = list(csv.DictReader(f))
    stage_recipe = load_recipe(config).stages[stage - 1]
    images_per_step = stage_recipe.batch_size * stage_recipe.gradient_accumulation * processes
    if len(rows) <= SKIP_STEPS + 1:
        raise RuntimeError(f"{minutes} minutes gave only {len(rows)} steps; give it more time")
    first, last = rows[SKIP_STEPS], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    return steps * images_per_step / (float(last["elapsed_s"]) - float(first["elapsed_s"]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/shapes-default.toml"))
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--init-from", default="default", help="pipeline folder the runs continue from ('' for none)")
    parser.add_argument("--layouts", nargs="+", type=layout, default=[(1, 2), (2, 1)])
    parser.add_argument("--minutes", type=float, default=1.5, help="training time per layout and round")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    rates: dict[tuple[int, int], list[float]] = {lay: [] for lay in args.layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for processes, threads in args.layouts:
                folder = Path(tmp) / f"r{r}-{processes}x{threads}"
                rates[(processes, threads)].append(
                    run_layout(args.recipe, args.stage, processes, threads, args.minutes, args.init_from, folder))
    print(f"{os.cpu_count()} CPUs; {args.recipe} stage {args.stage} from {args.init_from}; "
          f"median of {args.rounds} round(s) x {args.minutes} min")
    print_rates(rates, "training images/s")

if __name__ == "__main__":
    main()
