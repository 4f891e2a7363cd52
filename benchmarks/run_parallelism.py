"""Benchmark images/s on the CPU: `python -m benchmarks run` as one process with every core's threads, or shared by
one process per core (torchrun).

Each layout generates the same prompts for the same model into a fresh folder (nothing scored: `--clip none
--features none`, no super-resolution renders); the rate is images per second of the run's own generation time
(`run.json`'s `timing.generate_seconds`: models loaded, images sampled and written). Layouts take turns round by
round so a noisy machine slows them alike. Usage::

    python -m benchmarks.run_parallelism                          # the shipped model, 32 prompts, 1x2 vs 2x1
    python -m benchmarks.run_parallelism --models default@steps=10/2 --limit 48 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.layouts import layout, print_rates


def run_layout(models: str, limit: int, processes: int, threads: int, folder: Path) -> float:
    """Generate `limit` prompts in this layout; images per second of generation time."""
    launcher = [sys.executable, "-m"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    command = [*launcher, "benchmarks", "run", "--clip", "none", "--features", "none", "--suite", "shapes-test",
               "--models", models, "--limit", str(limit), "--sr-limit", "0", "--out", str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    timing = json.loads((folder / "run.json").read_text())["timing"]
    return limit / timing["generate_seconds"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="default", help="one model entry, e.g. default@steps=10/2")
    parser.add_argument("--limit", type=int, default=32, help="prompts per layout and round")
    parser.add_argument("--layouts", nargs="+", type=layout, default=[(1, 2), (2, 1)])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    rates: dict[tuple[int, int], list[float]] = {lay: [] for lay in args.layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for processes, threads in args.layouts:
                folder = Path(tmp) / f"r{r}-{processes}x{threads}"
                rates[(processes, threads)].append(run_layout(args.models, args.limit, processes, threads, folder))
    print(f"{os.cpu_count()} CPUs; {args.models}, {args.limit} shapes-test prompts; median of {args.rounds} round(s)")
    print_rates(rates, "benchmark images/s", digits=2)

if __name__ == "__main__":
    main()
