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

from .manifest import Manifest, fingerprint
from .plan import IMAGE, SR, Work
from .processes import Processes
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


def true_render_pair(item: SuiteItem, seed: int, low: int, high: int) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """A true render at `high` and its area-downsampled `low` version: the SR stage's input and target."""
    truth = reference_renders(item.spec, seed, high)
    return truth.resize((low, low), PIL.Image.BOX), truth


def _generate(model: TextToImageModel, batch: list[tuple[SuiteItem, int]]) -> tuple[list, float, dict]:
    started = time.perf_counter()
    images = model.generate([item.prompt for item, _ in batch], [seed for _, seed in batch])
    return images, time.perf_counter() - started, {}


def _super_resolve(model: TextToImageModel, batch: list[tuple[SuiteItem, int]]) -> tuple[list, float, dict]:
    """The cascade's SR stages from downsampled true renders; only the sampling is timed, not the rendering."""
    low = [true_render_pair(item, seed, model.sizes[0], model.sizes[-1])[0] for item, seed in batch]
    started = time.perf_counter()
    images = model.super_resolve([item.prompt for item, _ in batch], low, [seed for _, seed in batch])
    return images, time.perf_counter() - started, {"low": model.sizes[0], "high": model.sizes[-1]}


def _save(out: Path, manifest: Manifest, work: Work, item: SuiteItem, seed: int, image: PIL.Image.Image,
          seconds: float, batch: int, **extra) -> None:
    """Image first, then its manifest line: a line in the manifest always has its file."""
    model = work.model
    path = Path("images") / slug(model.name) / ("" if work.kind == IMAGE else work.kind) / f"{item.id}-s{seed}.png"
    save_image(image, out / path)
    manifest.add({
        "key": work.key(item, seed), "kind": work.kind, "model": model.name, "fingerprint": work.fingerprint,
        "item": item.id, "prompt": item.prompt, "category": item.category, "seed": seed, "image": path.as_posix(),
        "seconds": seconds, "batch": batch, **extra,
    })


def sample(out: Path, work: list[Work], batch_size: int = 1, processes: Processes | None = None,
           progress: bool = True, on_image=None) -> int:
    """Sample every job of `work` not yet in the manifest; returns how many images this process made.

    Process 0 reads the manifest and hands the pending keys to every process, so all cut the batches a lone process
    would cut (the same batches: the same images, bit for bit), and of N processes process r samples batches
    r, r + N, r + 2N, .... After every round of N batches the processes add up what they have made: process 0's bar
    counts the whole run and estimates the time left, and the last round returns only once every batch is saved.
    `on_image(done, total)` is called after each image this process saved (the demo's progress bar)."""
    processes = processes or Processes()
    manifest = Manifest(out, processes.rank)
    pending = set(processes.from_main(lambda: [key for w in work for key in w.pending(manifest)]))
    todo = [(w, batch) for w in work
            for batch in batches([(item, seed) for item, seed in w.jobs if w.key(item, seed) in pending], batch_size)]
    samplers = {IMAGE: _generate, SR: _super_resolve}
    made = 0
    with tqdm(total=len(pending), unit="img", desc="generating", disable=not (progress and processes.main)) as bar:
        for start in range(0, len(todo), processes.size):
            if start + processes.rank < len(todo):
                w, batch = todo[start + processes.rank]
                bar.set_description(w.label)
                images, seconds, extra = samplers[w.kind](w.model, batch)
                for (item, seed), image in zip(batch, images):
                    _save(out, manifest, w, item, seed, image, seconds / len(batch), len(batch), **extra)
                    made += 1
                    if on_image is not None:
                        on_image(made, len(pending))
            bar.update(processes.total(made) - bar.n)
    return made
