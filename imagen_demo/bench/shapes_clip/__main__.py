"""``python -m imagen_demo.bench.shapes_clip train|quality``: train shapes-CLIP from a recipe, or measure it."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from imagen_demo.utils.markdown import markdown_table

from ..metrics.shapes_clip import SHIPPED, ShapesClip
from ..suite import load_suite
from .quality import retrieval, verifier_agreement
from .train import Recipe, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imagen_demo.bench.shapes_clip", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (or --resume) from a recipe, then export the weights")
    train.add_argument("--config", type=Path, required=True, help="e.g. recipes/shapes-clip.toml")
    train.add_argument("--resume", action="store_true", help="go on from the run folder's checkpoint")
    train.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed and exported) after this long")
    quality = commands.add_parser("quality", help="retrieval on true renders; with --run, agreement with the verifier")
    quality.add_argument("--weights", type=Path, default=SHIPPED, help="a shapes-CLIP folder (default: the shipped one)")
    quality.add_argument("--suite", default="shapes-test", help="a suite with scene specs (built-in name or file)")
    quality.add_argument("--limit", type=int, default=None, help="first N prompts, round-robin over categories")
    quality.add_argument("--seed", type=int, default=0, help="prompt i's true render is drawn with seed SEED + i")
    quality.add_argument("--run", type=Path, action="append", default=[],
                         help="a benchmark run folder whose images to score against the verifier (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            log = partial(print, flush=True)
            log(f"exported to {train(Recipe.load(args.config), args.resume, args.max_minutes, log=log)}")
            return 0
        print_quality(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def print_quality(args: argparse.Namespace) -> None:
    result = retrieval(ShapesClip.load(args.weights), load_suite(args.suite, limit=args.limit), seed=args.seed)
    print(f"True renders of {args.suite} ({result['n']} prompts, seeds {args.seed}..{args.seed + result['n'] - 1}), "
          f"weights {args.weights}:\n")
    print(markdown_table(["R@1 image → text", "matched above mismatched", "mismatched pairs"],
                         [[f"{result['recall_at_1']:.3f}", f"{result['matched_above_mismatched']:.3f}",
                           result["mismatched_pairs"]]]))
    print("\n" + markdown_table(["category", "R@1"], [[c, f"{v:.3f}"] for c, v in result["recall_at_1_by_category"].items()]))
    name = "shapes-clip" if args.weights == SHIPPED else f"shapes-clip:{args.weights}"
    for out in args.run:
        agree = verifier_agreement(out, name)
        print(f"\nGenerated images of {out} ({agree['n']}, {agree['n_passing']} pass the verifier):\n")
        print(markdown_table(["mean CLIP score: pass", "mean: fail", "AUROC (pass vs fail)", "Spearman with checks"],
                             [[f"{agree['mean_passing']:.1f}", f"{agree['mean_failing']:.1f}", f"{agree['auroc']:.3f}",
                               f"{agree['spearman_checks']:.3f}"]]))


if __name__ == "__main__":
    sys.exit(main())
