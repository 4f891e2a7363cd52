"""Run a benchmark end to end: generate (resumably), score, and write the tables and reports.

The demo's Benchmark tab and ``python -m benchmarks`` both call these, so a page run and a command-line
run leave the same folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..registry import ModelRegistry, parse_model_list
from .metrics.distances import FID_RESAMPLES
from .report import write_report
from .runner import generate_images, save_run_file, super_resolve_truth, write_run_file
from .scoring import load_run, score_run, summarise, write_tables
from .suite import load_suite

# A hub CLIP where the hub or its cache has one, else shapes-CLIP for suites with scene specs (metrics.clip_score.resolve_clip).
DEFAULT_CLIP = "auto"


def run_benchmark(suite: str, models: str | list[str], out: Path, seeds=(0,), limit: int | None = None,
                  batch_size: int | None = None, sr_limit: int = 8, registry: ModelRegistry | None = None, progress: bool = True,
                  on_image=None, grid_limit: int = 24, **scoring) -> dict:
    """Generate, score and report; returns {'summary': DataFrame, 'report': html path, 'timing': {...}}."""
    started = time.perf_counter()
    items = load_suite(suite, limit=limit)
    entries = parse_model_list(models if isinstance(models, str) else ",".join(models))
    registry = registry or ModelRegistry(scoring.get("device"))
    loaded = [registry.get(entry) for entry in entries]
    if batch_size is None:
        batch_size = 8 if registry.device.type == "cuda" else 1
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    out = Path(out)
    write_run_file(out, str(suite), items, list(seeds), loaded, limit=limit, batch_size=batch_size, sr_limit=sr_limit)
    generate_images(out, items, list(seeds), loaded, batch_size=batch_size, progress=progress, on_image=on_image)
    if sr_limit > 0:
        super_resolve_truth(out, items, seeds[0], loaded, sr_limit, batch_size=batch_size, progress=progress)
    generated = time.perf_counter()
    scored = score(out, **scoring)
    _record_timing(out, {"wall_seconds": time.perf_counter() - started, "generate_seconds": generated - started,
                         "score_seconds": time.perf_counter() - generated})
    return write(out, *scored, grid_limit=grid_limit)


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
