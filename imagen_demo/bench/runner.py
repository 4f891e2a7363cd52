"""Generate a suite's images for several models, resumably: every image and its manifest line are on disk
before the next batch starts, so a killed run loses at most one batch and a re-run skips what is done.

Output folder::

    run.json          what the latest invocation asked for (suite, items, seeds, models, versions)
    manifest.jsonl    one line per finished image: model, item, seed, file, sampling seconds
                      (manifest.rank<r>.jsonl beside it: process r's lines, when torchrun shared the run; manifest.py)
    images/<model>/<item id>-s<seed>.png
    images/<model>/sr/<item id>-s<seed>.png      super-resolved true renders (PSNR/SSIM)

A manifest entry is keyed by model entry, a fingerprint of the model (source, settings, pipeline class, components
with their parameter counts, saved config), item id and seed: a changed suite line, model or setting regenerates only
itself.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import PIL.Image
import torch
from tqdm.auto import tqdm

import imagen_demo
from imagen_demo.registry import TextToImageModel, slug
from imagen_demo.utils.atomic import atomic_path, save_image

from .manifest import Manifest, entry_key, fingerprint
from .references import reference_renders
from .suite import SuiteItem

RUN_FILE = "run.json"


def versions() -> dict[str, str]:
    out = {"imagen_demo": imagen_demo.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for package in ("torch", "diffusers", "transformers", "torchmetrics", "open_clip_torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"

    out["torch_threads"] = str(torch.get_num_threads())
    out["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return out


def write_run_file(out: Path, suite: str, items: list[SuiteItem], seeds: list[int], models: list[TextToImageModel],
                   **options) -> dict:
    run = {
        "suite": suite, "items": [asdict(item) for item in items], "seeds": seeds,
        "models": [{**m.describe(), "fingerprint": fingerprint(m)} for m in models],
        "options": options, "versions": versions(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_run_file(out, run)
    return run


def save_run_file(out: Path, run: dict) -> None:
    with atomic_path(out / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def batches(todo: list, size: int):
    for start in range(0, len(todo), size):
        yield todo[start:start + size]


def _save(out: Path, manifest: Manifest, kind: str, model: TextToImageModel, fp: str, item: SuiteItem, seed: int,
          image: PIL.Image.Image, seconds: float, batch: int, **extra) -> None:
    """Image first, then its manifest line: a line in the manifest always has its file."""
    path = Path("images") / slug(model.name) / ("" if kind == "image" else kind) / f"{item.id}-s{seed}.png"
    save_image(image, out / path)
    manifest.add({
        "key": entry_key(kind, model.name, fp, item.id, seed), "kind": kind, "model": model.name, "fingerprint": fp,
        "item": item.id, "prompt": item.prompt, "category": item.category, "seed": seed, "image": path.as_posix(),
        "seconds": seconds, "batch": batch, **extra,
    })


def generate_images(out: Path, items: list[SuiteItem], seeds: list[int], models: list[TextToImageModel],
                    batch_size: int = 1, progress: bool = True, on_image=None) -> int:
    """Sample every (model, item, seed) not yet in the manifest; returns how many images were made.

    `on_image(done, total)` is called after each saved image (the demo's progress bar)."""
    manifest = Manifest(out)
    plan = []
    for model in models:
        fp = fingerprint(model)
        todo = [(item, seed) for seed in seeds for item in items
                if not manifest.done(entry_key("image", model.name, fp, item.id, seed))]
        plan.append((model, fp, todo))
    total = sum(len(todo) for *_, todo in plan)
    made = 0
    with tqdm(total=total, unit="img", desc="generating", disable=not progress) as bar:
        for model, fp, todo in plan:
            bar.set_description(model.name)
            for batch in batches(todo, batch_size):
                started = time.perf_counter()
                images = model.generate([item.prompt for item, _ in batch], [seed for _, seed in batch])
                seconds = (time.perf_counter() - started) / len(batch)
                for (item, seed), image in zip(batch, images):
                    _save(out, manifest, "image", model, fp, item, seed, image, seconds, len(batch))
                    made += 1
                    bar.update(1)
                    if on_image is not None:
                        on_image(made, total)
    return made


def true_render_pair(item: SuiteItem, seed: int, low: int, high: int) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """A true render at `high` and its area-downsampled `low` version: the SR stage's input and target."""
    truth = reference_renders(item.spec, seed, high)
    return truth.resize((low, low), PIL.Image.BOX), truth


def super_resolve_truth(out: Path, items: list[SuiteItem], seed: int, models: list[TextToImageModel], limit: int,
                        batch_size: int = 1, progress: bool = True) -> int:
    """For cascades: super-resolve downsampled true renders of the first `limit` spec items (for PSNR/SSIM)."""
    manifest = Manifest(out)
    chosen = [item for item in items if item.spec][:limit]
    made = 0
    for model in models:
        if len(model.sizes) < 2 or not chosen:
            continue
        fp = fingerprint(model)
        todo = [item for item in chosen if not manifest.done(entry_key("sr", model.name, fp, item.id, seed))]
        for batch in tqdm(list(batches(todo, batch_size)), desc=f"{model.name} SR", disable=not progress):
            low = [true_render_pair(item, seed, model.sizes[0], model.sizes[-1])[0] for item in batch]
            started = time.perf_counter()
            images = model.super_resolve([item.prompt for item in batch], low, [seed] * len(batch))
            seconds = (time.perf_counter() - started) / len(batch)
            for item, image in zip(batch, images):
                _save(out, manifest, "sr", model, fp, item, seed, image, seconds, len(batch),
                      low=model.sizes[0], high=model.sizes[-1])
                made += 1
    return made
