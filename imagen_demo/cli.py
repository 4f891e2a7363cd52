"""Command line: ``python -m imagen_demo generate "PROMPT" --model PATH --out image.png``."""

# Only light modules at the top: --help and argument errors must answer without importing torch or
# diffusers; each command imports what it uses.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.loading import DEFAULT_MODEL, CorruptWeightsError, WeightsNotFoundError
from .core.sampling_names import SCHEDULER_CLASS_NAMES, THRESHOLDING_MODES
from .training.errors import TrainingDivergedError


def _per_stage(kind, choices: tuple = ()):
    """'50' -> 50 for every stage; '50,20' -> [50, 20], one per stage (each among `choices` when given)."""

    def parse(text: str):
        try:
            values = [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} or a comma-separated list, got {text!r}")
        if choices and (wrong := [v for v in values if v not in choices]):
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)} (or one per stage), got {wrong[0]!r}")
        return values[0] if len(values) == 1 else values

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imagen_demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="text -> image through the whole cascade")
    gen.add_argument("prompt")
    gen.add_argument("--model", default=DEFAULT_MODEL, help="pipeline folder, hub id, or 'default' (the shipped shapes model)")
    gen.add_argument("--negative-prompt", default=None)
    gen.add_argument("--seed", type=int, default=None, help="seed of the first image (random when left out)")
    gen.add_argument("--num-images", type=int, default=1)
    gen.add_argument("--steps", type=_per_stage(int), default=None, help="denoising steps, e.g. 50 or 50,25 per stage")
    gen.add_argument("--guidance", type=_per_stage(float), default=None, help="guidance scale, e.g. 5 or 5,3 per stage")
    gen.add_argument("--scheduler", choices=sorted(SCHEDULER_CLASS_NAMES), default=None,
                     help="sampler of every stage (default: the model's own)")
    gen.add_argument("--noise-aug", type=float, default=None, help="noise-augmentation level for SR stages, in [0, 1]")
    gen.add_argument("--thresholding", type=_per_stage(str, THRESHOLDING_MODES), default=None,
                     help=f"{', '.join(THRESHOLDING_MODES)}, or one per stage, e.g. static,none (default: the model's; "
                          "a stage that predicts a residual takes none)")
    gen.add_argument("--percentile", type=float, default=None, help="dynamic thresholding percentile (default: the model's)")
    gen.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    gen.add_argument("--out", type=Path, default=Path("imagen.png"), help="output file; with several images, -N is added")
    gen.add_argument("--save-stages", action="store_true", help="also save every stage's image (e.g. the 64x64 base)")
    gen.add_argument("--no-rewrite", action="store_true",
                     help="give the text encoder a Chinese prompt as typed, even one it cannot read "
                          "(by default a shapes-world prompt becomes its English caption)")

    train = commands.add_parser("train", help="train one cascade stage from a recipe (accelerate launch works too)")
    train.add_argument("--config", type=Path, required=True, help="recipe TOML, e.g. recipes/shapes-default.toml")
    train.add_argument("--stage", type=int, required=True, help="1 = base, 2 = first super-resolution stage, ...")
    train.add_argument("--resume", action="store_true", help="continue from the stage's last checkpoint")
    train.add_argument("--init-from", default=None,
                       help="start from this pipeline folder's weights for the stage (e.g. 'default', the committed model)"
                            " and continue its training record")
    train.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed) after this long")
    train.add_argument("--learning-rate", type=_positive_float, default=None,
                       help="this run's learning rate instead of the recipe's (e.g. a lower one to anneal before committing)")
    train.add_argument("--device", default=None, help="cpu to force the CPU; default: the GPU when there is one")
    train.add_argument("--assemble", action="store_true", help="afterwards, write the recipe's pipeline folder")

    assemble = commands.add_parser("assemble", help="gather every trained stage into one pipeline folder")
    assemble.add_argument("--config", type=Path, required=True)
    assemble.add_argument("--out", type=Path, default=None, help="default: the recipe's output")
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _numbered(path: Path, index: int, count: int, stage: int | None = None) -> Path:
    stem = path.stem + (f"-{index}" if count > 1 else "") + (f".stage{stage}" if stage is not None else "")
    return path.with_name(stem + (path.suffix or ".png"))


def generate(args: argparse.Namespace) -> list[Path]:
    # Imported here, as in every command: --help and argument errors answer without torch and diffusers (test_cli).
    import torch

    from .core.pipeline import ImagenPipeline
    from .core.schedulers import swap_schedulers
    from .prompting import english_rewrite
    from .utils.atomic import save_image

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = ImagenPipeline.from_pretrained(args.model).to(device)
    if args.scheduler is not None:
        pipe = swap_schedulers(pipe, args.scheduler)
    prompt = args.prompt
    if not args.no_rewrite and (english := english_rewrite(pipe, prompt)):
        print(f"rewritten as: {english}  (the text encoder cannot read the prompt as typed)")
        prompt = english
    out = pipe(
        prompt, negative_prompt=args.negative_prompt, num_images_per_prompt=args.num_images, seed=args.seed,
        guidance_scale=args.guidance, num_inference_steps=args.steps, noise_aug_level=args.noise_aug,
        thresholding=args.thresholding, dynamic_thresholding_percentile=args.percentile,
        return_intermediates=args.save_stages,
    )
    written = []
    for i, (image, seed) in enumerate(zip(out.images, out.seeds)):
        written.append(save_image(image, _numbered(args.out, i, len(out.images))))
        print(f"{written[-1]}  (seed {seed})")
        for stage, images in enumerate(out.stage_images[:-1], start=1):
            written.append(save_image(images[i], _numbered(args.out, i, len(out.images), stage)))
    return written


def train_or_assemble(args: argparse.Namespace) -> None:
    from .training import assemble, load_recipe, train_stage  # here, not at the top: see `generate`

    recipe = load_recipe(args.config)
    if args.command == "train":
        print(train_stage(recipe, args.stage, resume=args.resume, max_minutes=args.max_minutes, device=args.device,
                          init_from=args.init_from, learning_rate=args.learning_rate))
    if args.command == "assemble" or args.assemble:
        print(assemble(recipe, getattr(args, "out", None)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            generate(args)
        else:
            train_or_assemble(args)
    except (ValueError, WeightsNotFoundError, CorruptWeightsError, FloatingPointError, FileExistsError,
            FileNotFoundError, TrainingDivergedError, ImportError) as err:  # ImportError: an optional package, named
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # the trainer has saved its checkpoint before this reaches us
        print(f"interrupted ({err or 'Ctrl-C'}); training saved its checkpoint: continue with --resume", file=sys.stderr)
        return 130
    return 0
