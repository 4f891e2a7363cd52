"""Does the super-resolution stage beat bicubic upsampling? PSNR, SSIM and background speckle, side by side.

True shapes-world renders (held-out specs, plain backgrounds) are area-downsampled to the base size; the SR
stage super-resolves them (prompt = the spec's caption) and bicubic interpolation upsamples the same pixels.
Both are compared with the true high-resolution render. *Speckle* is the standard deviation (0-255 units) of
the output over background pixels at least a few pixels from any object: 0 on a true render, and what a badly
trained or crop-confused SR stage sprinkles on flat backgrounds. Settings are swept to pick defaults::

    python -m benchmarks.sr_fidelity                                   # the shipped model at its defaults
    python -m benchmarks.sr_fidelity --n 24 --steps 4 10 --noise-aug 0 0.1 --guidance 1 3
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import PIL.Image
from scipy import ndimage

from imagen_demo import ImagenPipeline
from imagen_demo.bench.metrics.fidelity import sr_fidelity
from imagen_demo.core.loading import DEFAULT_MODEL
from imagen_demo.shapes import Spec, render, sample_scene, test_suite
from imagen_demo.utils.markdown import markdown_table

BACKGROUND_MARGIN = 3  # pixels around each object that do not count as background (anti-aliased edges)


def true_renders(n: int, size: int, seed: int = 0) -> list[tuple[str, PIL.Image.Image, np.ndarray]]:
    """(caption, true render, background mask) for n held-out scenes drawn on plain backgrounds."""
    rows = test_suite(max(1, -(-n // 6)), seed=seed)[:n]
    out = []
    for i, row in enumerate(rows):
        scene = sample_scene(Spec.from_dict(row["spec"]), np.random.default_rng([seed, i]), plain_background=1.0)
        image = render(scene, size)
        pixels = np.asarray(image, dtype=np.float32)
        flat = np.abs(pixels - pixels[0, 0]).max(axis=2) < 1.0  # the plain background's own colour
        out.append((row["prompt"], image, ndimage.binary_erosion(flat, iterations=BACKGROUND_MARGIN)))
    return out


def speckle(image: PIL.Image.Image, background: np.ndarray) -> float:
    pixels = np.asarray(image, dtype=np.float32)[background]
    return float(pixels.std(axis=0).mean()) if len(pixels) else float("nan")


def evaluate(pipe: ImagenPipeline, n: int, settings: list[dict], seed: int = 0) -> list[dict]:
    """One row per method: bicubic, then the SR stage at each settings dict; means over the n scenes."""
    high, low = pipe.stages[-1].size, pipe.stages[-2].size
    scenes = true_renders(n, high, seed)
    targets = [image for _, image, _ in scenes]
    lows = [image.resize((low, low), PIL.Image.Resampling.BOX) for image in targets]  # area downsampling

    def row(method: str, outputs: list[PIL.Image.Image], seconds: float | None = None) -> dict:
        scores = sr_fidelity(outputs, targets)
        return {"method": method, "psnr": float(np.mean([s["psnr_sr"] for s in scores])),
                "ssim": float(np.mean([s["ssim_sr"] for s in scores])),
                "speckle": float(np.nanmean([speckle(o, bg) for o, (_, _, bg) in zip(outputs, scenes)])),
                "seconds": seconds}

    rows = [row("bicubic", [image.resize((high, high), PIL.Image.Resampling.BICUBIC) for image in lows])]
    for setting in settings:
        outputs, start = [], time.perf_counter()
        for i, ((prompt, _, _), image) in enumerate(zip(scenes, lows)):
            out = pipe(prompt, seed=seed + i, image=image, **_call_settings(pipe, setting))
            outputs.append(out.images[0])
        label = ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
        rows.append(row(f"SR stage ({label})", outputs, (time.perf_counter() - start) / len(scenes)))
    return rows


def _call_settings(pipe: ImagenPipeline, setting: dict) -> dict:
    """Pipeline keyword arguments for the last stage's settings (earlier stages are skipped by `image=`)."""
    stages = len(pipe.stages)
    kwargs = {}
    if "steps" in setting:
        kwargs["num_inference_steps"] = [1] * (stages - 1) + [setting["steps"]]
    if "guidance" in setting:
        kwargs["guidance_scale"] = [1.0] * (stages - 1) + [setting["guidance"]]
    if "noise_aug" in setting:
        kwargs["noise_aug_level"] = setting["noise_aug"]
    return kwargs


def markdown(rows: list[dict]) -> str:
    return markdown_table(["method", "PSNR (dB) ↑", "SSIM ↑", "background speckle ↓", "s / image"],
                          ([r["method"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['speckle']:.2f}",
                            "—" if r["seconds"] is None else f"{r['seconds']:.2f}"] for r in rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--n", type=int, default=24, help="scenes (held-out specs, plain backgrounds)")
    parser.add_argument("--steps", type=int, nargs="*", default=[], help="SR steps to sweep (default: the model's)")
    parser.add_argument("--noise-aug", type=float, nargs="*", default=[], help="noise-augmentation levels to sweep")
    parser.add_argument("--guidance", type=float, nargs="*", default=[], help="SR guidance scales to sweep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pipe = ImagenPipeline.from_pretrained(args.model)
    if len(pipe.stages) < 2:
        parser.error(f"{args.model} has no super-resolution stage")
    axes = {"steps": args.steps, "noise_aug": args.noise_aug, "guidance": args.guidance}
    axes = {k: v for k, v in axes.items() if v}
    settings = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] or [{}]
    print(f"model {args.model}; {args.n} held-out scenes on plain backgrounds, area-downsampled to "
          f"{pipe.stages[-2].size} px, compared at {pipe.stages[-1].size} px; defaults {pipe.defaults}")
    print(markdown(evaluate(pipe, args.n, settings, args.seed)))


if __name__ == "__main__":
    main()
