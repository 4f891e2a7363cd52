"""Run a benchmark end to end: generate (resumably), score, and write the tables and reports.

The demo's Benchmark tab and ``python -m benchmarks`` both call these, so a page run and a command-line
run leave the same folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..registry import ModelRegistry, TextToImageModel, parse_model_list
from .manifest import Manifest
from .metrics.distances import FID_RESAMPLES
from .plan import Work, describe_work, image_work, sr_work
from .processes import Processes
from .report import write_report
from .runner import sample, save_run_file, write_run_file
from .scoring import load_run, score_run, summarise, write_tables
from .suite import SuiteItem, load_suite

# A hub CLIP where the hub or its cache has one, else shapes-CLIP for suites with scene specs (metrics.clip_score.resolve_clip).
DEFAULT_CLIP = "auto"


def _load(suite: str, models: str | list[str], limit: int | None, batch_size: int | None,
          registry: ModelRegistry) -> tuple[list[SuiteItem], list[TextToImageModel], int]:
    """The suite's items, the loaded models and the batch size: what a run and its dry run both start from."""
    items = load_suite(suite, limit=limit)
    entries = parse_model_list(models if isinstance(models, str) else ",".join(models))
    loaded = [registry.get(entry) for entry in entries]
    if batch_size is None:
        batch_size = 8 if registry.device.type == "cuda" else 1
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    return items, loaded, batch_size


def _work(items: list[SuiteItem], seeds: list[int], models: list[TextToImageModel],
          sr_limit: int) -> tuple[list[Work], list[Work]]:
    return image_work(items, seeds, models), sr_work(items, seeds[0], models, sr_limit)


def run_benchmark(suite: str, models: str | list[str], out: Path, seeds=(0,), limit: int | None = None,
                  batch_size: int | None = None, sr_limit: int = 8, registry: ModelRegistry | None = None, progress: bool = True,
                  on_image=None, grid_limit: int = 24, processes: Processes | None = None, **scoring) -> dict | None:
    """Generate, score and report; returns {'summary': DataFrame, 'report': html path, 'timing': {...}}.

    Shared among `processes` (torchrun), each samples its share of the images, and process 0 alone writes run.json,
    then scores and reports once all are made; the others return None."""
    started = time.perf_counter()
    processes = processes or Processes()
    registry = registry or ModelRegistry(scoring.get("device"))
    items, loaded, batch_size = _load(suite, models, limit, batch_size, registry)
    out, seeds = Path(out), list(seeds)
    if processes.main:
        write_run_file(out, str(suite), items, seeds, loaded, limit=limit, batch_size=batch_size, sr_limit=sr_limit)
    images, srs = _work(items, seeds, loaded, sr_limit)
    sample(out, images + srs, batch_size, processes, progress=progress, on_image=on_image)
    if not processes.main:
        return None
    generated = time.perf_counter()
    scored = score(out, **scoring)
    _record_timing(out, {"wall_seconds": time.perf_counter() - started, "generate_seconds": generated - started,
                         "score_seconds": time.perf_counter() - generated, "processes": processes.size})
    return write(out, *scored, grid_limit=grid_limit)


def plan_benchmark(suite: str, models: str | list[str], out: Path, seeds=(0,), limit: int | None = None,
                   batch_size: int | None = None, sr_limit: int = 8, registry: ModelRegistry | None = None,
                   processes: int = 1) -> list[str]:
    """`run --dry-run`: the lines saying how much work the run holds, how much is done and the time left, counted on
    the plan a run samples. Loads the models (their fingerprints name their images) but samples and writes nothing."""
    items, loaded, _ = _load(suite, models, limit, batch_size, registry or ModelRegistry())
    return describe_work(Manifest(Path(out)), items, list(seeds), *_work(items, list(seeds), loaded, sr_limit), processes)


def _record_timing(out: Path, timing: dict) -> None:
    run = load_run(out)
    run["timing"] = timing
    save_run_file(out, run)


def score(out: Path, clip: str | None = DEFAULT_CLIP, features: str = "auto", reference: Path | None = None,
          device: str | None = None, reference_seeds: int | None = None, fid_resamples: int | None = None):
    """Score a run folder (cached per image) and summarise it: (scores, summary)."""
    scores = score_run(out, clip=None if clip in (None, "none") else clip, features=features, reference=reference,
                       device=device or "cpu", reference_seeds=reference_seeds,
                       fid_resamples=FID_RESAMPLES if fid_resamples is None else fid_resamples)
    return scores, summarise(scores, load_run(out))


def write(out: Path, scores, summary, grid_limit: int = 24) -> dict:
    """results.csv, summary.csv, report.md, report.html; returns what the caller shows."""
    run = load_run(out)
    run["clip"] = scores.clip  # what the reports and the demo's Benchmark tab call the CLIP score's model
    save_run_file(out, run)
    write_tables(out, scores, summary)
    md, html = write_report(out, scores, summary, run, grid_limit=grid_limit)
    return {"summary": summary, "notes": scores.notes, "report": html, "markdown": md, "timing": run.get("timing")}


def build_report(out: Path, grid_limit: int = 24, **scoring) -> dict:
    """`python -m benchmarks report DIR`: everything from files on disk, no sampling."""
    return write(out, *score(out, **scoring), grid_limit=grid_limit)
