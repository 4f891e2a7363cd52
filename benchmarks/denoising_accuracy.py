"""At which noise levels does a base stage lose the prompt? Verifier checks on one-step x0 predictions.

True renders are noised to timestep t and the base U-Net predicts the clean image in one step; the verifier
checks that prediction against the render's spec. Sampling can only be as right as the noisiest steps it
decides the layout in, so this shows where training has to improve, and it moves in a few thousand images,
long before held-out accuracy does. Examples come from the training distribution (it measures how well the
denoiser has learned, not composition). Several U-Nets (e.g. the arms of an A/B, each a trainer's
`final/unet`) are scored side by side inside the same pipeline::

    python -m benchmarks.denoising_accuracy                                  # the shipped base
    python -m benchmarks.denoising_accuracy --unet runs/a/stage_1/final/unet runs/b/stage_1/final/unet --proxy 32

`--proxy N` also samples the trainer's held-out proxy (N prompts per category, 20 steps) for each U-Net.
`--layout` scores the noisiest timesteps instead, where sampling decides the layout: how far the prompt moves the
one-step prediction toward the named side, and the layout checks with and without the prompt
(`imagen_demo.training.layout`)::

    python -m benchmarks.denoising_accuracy --layout --unet runs/a/stage_1/final/unet runs/b/stage_1/final/unet
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor

from imagen_demo import ImagenPipeline
from imagen_demo.core.loading import DEFAULT_MODEL
from imagen_demo.core.sampling import Stage, predicted_original
from imagen_demo.core.text_encoder import TextEncoder
from imagen_demo.core.unet import EfficientUNet
from imagen_demo.shapes import CATEGORIES, verify
from imagen_demo.shapes.example import sample_example
from imagen_demo.training.data import model_range_tensor
from imagen_demo.training.evaluate import held_out_accuracy
from imagen_demo.training.layout import LAYOUT_TIMESTEPS, layout_diagnostic
from imagen_demo.utils.markdown import markdown_table

CHECKS = ("shape", "count", "size", "position")


@torch.no_grad()
def denoising_accuracy(stage: Stage, text_encoder: TextEncoder, timesteps: list[int], per_category: int = 16,
                       seed: int = 3) -> list[dict]:
    """One row per timestep: verifier pass rate and check rates of the x0 predictions, and their MSE."""
    rng = np.random.default_rng(seed)
    examples = [sample_example(rng, category=c, plain_background=0.8) for c in CATEGORIES for _ in range(per_category)]
    x0 = model_range_tensor([e.images[stage.size] for e in examples])
    text = text_encoder.encode([e.caption for e in examples])
    processor, unet = VaeImageProcessor(do_resize=False), stage.unet.eval()
    alphas_cumprod = stage.scheduler.alphas_cumprod
    rows = []
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        a = alphas_cumprod[t]
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        output = unet(noisy, torch.full((len(examples),), t), text.embeddings, text.mask)
        predicted = predicted_original(stage.scheduler, 0, t, noisy, output, unet.config.prediction_type).clamp(-1, 1)
        results = [verify(e.spec, image) for e, image in zip(examples, processor.postprocess(predicted, output_type="pil"))]
        checks = [c for r in results for c in r.checks]
        rows.append({"t": t, "snr": float(a / (1 - a)), "pass": float(np.mean([r.passed for r in results])),
                     "mse": float(((predicted - x0) ** 2).mean()),
                     **{k: _rate([c.passed for c in checks if c.kind == k]) for k in CHECKS}})
    return rows


def _rate(passed: list[bool]) -> float:
    return float(np.mean(passed)) if passed else float("nan")  # nan: no check of that kind among the examples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="pipeline whose base stage (and text encoder) is scored")
    parser.add_argument("--unet", nargs="*", default=[], help="base U-Net folders scored in the pipeline's place")
    parser.add_argument("--timesteps", type=int, nargs="+", default=None,
                        help=f"default 600 700 800, or {' '.join(map(str, LAYOUT_TIMESTEPS))} with --layout")
    parser.add_argument("--layout", action="store_true", help="the layout diagnostic at the noisiest timesteps")
    parser.add_argument("--per-category", type=int, default=16)
    parser.add_argument("--proxy", type=int, default=0, help="also the held-out sampling proxy, N prompts per category")
    args = parser.parse_args(argv)

    pipe = ImagenPipeline.from_pretrained(args.model)
    stage = pipe.stages[0]
    candidates = {args.model: stage.unet, **{path: EfficientUNet.from_pretrained(path, use_safetensors=True)
                                              for path in args.unet}}
    table, proxies = [], []
    for name, unet in candidates.items():
        stage.unet = unet.eval()
        if args.layout:
            rows = layout_diagnostic(stage, pipe.prompt_encoder, args.timesteps or LAYOUT_TIMESTEPS, args.per_category)
        else:
            rows = denoising_accuracy(stage, pipe.prompt_encoder, args.timesteps or [600, 700, 800], args.per_category)
        table += [{"unet": name, **row} for row in rows]
        if args.proxy:
            proxy = held_out_accuracy(stage, pipe.prompt_encoder, per_category=args.proxy)
            proxies.append({"unet": name, "overall": proxy["overall"],
                            **{k: proxy[f"check_{k}"] for k in ("colour", *CHECKS) if f"check_{k}" in proxy}})
    print(_table(table))
    if proxies:
        print(f"\nheld-out proxy ({args.proxy} prompts per category, 20 steps): overall and check rates")
        print(_table(proxies))


def _table(rows: list[dict]) -> str:
    return markdown_table(list(rows[0]), [[f"{v:.3f}" if isinstance(v, float) else v for v in row.values()] for row in rows])


if __name__ == "__main__":
    main()
