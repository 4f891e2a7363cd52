"""Seconds per image when the runner batches N prompts into one pipeline call vs one call per prompt.

Both are timed in the same process, alternating, so the ratio survives a noisy machine. This is what
sets the runner's default batch size (1 on CPU, where a bigger batch was slower per image)::

    python -m benchmarks.batching --batch 4 --steps 10 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch

from imagen_demo import ImagenPipeline
from imagen_demo.core.loading import DEFAULT_MODEL

PROMPTS = ["a red circle above a blue square", "two green stars", "four big brown stars", "a purple disc", "one cross",
           "a yellow triangle to the left of a purple cross", "three small blue squares", "a big green star"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    pipe = ImagenPipeline.from_pretrained(args.model, device="cuda" if torch.cuda.is_available() else "cpu")
    prompts = (PROMPTS * args.batch)[: args.batch]
    seeds = list(range(args.batch))
    pipe(prompts[0], seed=0, num_inference_steps=args.steps)  # warm-up
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {pipe.device}, "
          f"{args.steps} steps per stage, {args.batch} images")
    for repeat in range(args.repeats):
        started = time.perf_counter()
        pipe(prompts, seed=seeds, num_inference_steps=args.steps)
        batched = (time.perf_counter() - started) / args.batch
        started = time.perf_counter()
        for prompt, seed in zip(prompts, seeds):
            pipe(prompt, seed=seed, num_inference_steps=args.steps)
        single = (time.perf_counter() - started) / args.batch
        print(f"repeat {repeat + 1}: batch {args.batch}: {batched:.2f} s/image; batch 1: {single:.2f} s/image; "
              f"batched / single = {batched / single:.2f}")


if __name__ == "__main__":
    main()
