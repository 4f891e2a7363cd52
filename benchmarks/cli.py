"""``python -m benchmarks run|report|suites``: DrawBench-style runs over several models, and their reports.

    python -m benchmarks run --suite shapes-test --models default,default@steps=10 --seeds 0 --out reports/demo --limit 40
    python -m benchmarks report reports/demo          # rebuild tables, plots and HTML without sampling
    python -m benchmarks suites                       # the built-in suites
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from imagen_demo.loading import CorruptWeightsError, WeightsNotFoundError
from imagen_demo.registry import ModelRegistry, parse_model_list

from .runner import generate_images, save_run_file, super_resolve_truth, write_run_file
from .scoring import load_run, score_run, summarise, write_tables
from .suite import builtin_suites, load_suite

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers separated by commas, got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"give one or more distinct seeds >= 0, got {text!r}")
    return seeds


def _scoring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip", default=DEFAULT_CLIP,
                        help="CLIP for the CLIP score: HF id (offline: must be cached), local folder, or "
                             "open_clip:ARCH:WEIGHTS; 'none' skips it")
    parser.add_argument("--features", default="auto", choices=["auto", "inception", "efficientnet-lite0", "none"],
                        help="feature network for Fréchet/kernel distances (auto: Inception if present)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder of reference images for FD/KD (default: true renders of shapes-world specs)")
    parser.add_argument("--grid-limit", type=int, default=24, help="prompts shown side by side in report.html")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="generate (resumably), score and report")
    run.add_argument("--suite", required=True, help=f"built-in suite ({', '.join(builtin_suites())}) or a CSV/TSV/JSONL file")
    run.add_argument("--models", required=True, help="comma-separated entries, e.g. default,default@steps=10,guidance=3")
    run.add_argument("--seeds", type=_seeds, default=[0], help="e.g. 0,1 (every prompt is sampled once per seed)")
    run.add_argument("--out", type=Path, required=True, help="run folder; re-running the same command resumes it")
    run.add_argument("--limit", type=int, default=None, help="first N prompts, taken round-robin over categories")
    run.add_argument("--batch-size", type=int, default=None,
                     help="prompts per pipeline call (default: 1 on CPU, where bigger batches were slower per image "
                          "in python -m benchmarks.batching; 8 on GPU)")
    run.add_argument("--sr-limit", type=int, default=8,
                     help="spec prompts whose downsampled true render each cascade super-resolves (PSNR/SSIM); 0 = none")
    _scoring_options(run)
    report = commands.add_parser("report", help="rebuild results.csv, summary.csv, report.md and report.html")
    report.add_argument("out", type=Path)
    _scoring_options(report)
    commands.add_parser("suites", help="list the built-in suites")
    return parser


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
          device: str | None = None):
    """Score a run folder (cached per image) and summarise it: (scores, summary)."""
    scores = score_run(out, clip=None if clip in (None, "none") else clip, features=features, reference=reference,
                       device=device or "cpu")
    return scores, summarise(scores, load_run(out))


def write(out: Path, scores, summary, grid_limit: int = 24) -> dict:
    """results.csv, summary.csv, report.md, report.html; returns what the caller shows."""
    from .report import write_report

    run = load_run(out)
    write_tables(out, scores, summary)
    md, html = write_report(out, scores, summary, run, grid_limit=grid_limit)
    return {"summary": summary, "notes": scores.notes, "report": html, "markdown": md, "timing": run.get("timing")}


def build_report(out: Path, grid_limit: int = 24, **scoring) -> dict:
    """`python -m benchmarks report DIR`: everything from files on disk, no sampling."""
    return write(out, *score(out, **scoring), grid_limit=grid_limit)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scoring = {k: getattr(args, k, None) for k in ("clip", "features", "reference", "grid_limit", "device")}
    try:
        if args.command == "suites":
            for name, path in builtin_suites().items():
                items = load_suite(path)
                print(f"{name:20s} {len(items):4d} prompts, {len({i.category for i in items})} categories  ({path})")
            return 0
        if args.command == "run":
            result = run_benchmark(args.suite, args.models, args.out, args.seeds, args.limit, args.batch_size,
                                   args.sr_limit, **scoring)
            print(f"generated and scored in {result['timing']['wall_seconds']:.0f} s")
        else:
            result = build_report(args.out, **scoring)
    except KeyboardInterrupt:
        print("\ninterrupted: finished images are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, WeightsNotFoundError, CorruptWeightsError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"report: {result['markdown']}\n        {result['report']}")
    return 0
