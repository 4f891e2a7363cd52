"""``python -m benchmarks run|report|suites``: DrawBench-style runs over several models, and their reports.

    python -m benchmarks run --suite shapes-test --models default,default@steps=10 --seeds 0 --out reports/demo --limit 40
    torchrun --standalone --nproc_per_node 2 -m benchmarks run ...   # the same run shared by 2 processes (GPUs)
    python -m benchmarks run ... --dry-run            # how much work, how much done, the time left; samples nothing
    python -m benchmarks report reports/demo          # rebuild tables, plots and HTML without sampling
    python -m benchmarks suites                       # the built-in suites
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagen_demo.bench.processes import launched_processes
from imagen_demo.bench.run import DEFAULT_CLIP, build_report, plan_benchmark, run_benchmark
from imagen_demo.bench.suite import builtin_suites, load_suite
from imagen_demo.core.loading import CorruptWeightsError, WeightsNotFoundError
from imagen_demo.registry import ModelRegistry


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers separated by commas, got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"give one or more distinct seeds >= 0, got {text!r}")
    return seeds


def _count(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"give a whole number >= {least}, got {text!r}")
        return value
    return parse


def _scoring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip", default=DEFAULT_CLIP,
                        help="CLIP for the CLIP score: 'auto' (openai/clip-vit-base-patch32 where the hub or its cache "
                             "has it, else the shipped shapes-CLIP for suites with scene specs), an HF id (offline: "
                             "must be cached), a local folder, open_clip:ARCH:WEIGHTS, shapes-clip[:FOLDER]; "
                             "'none' skips it")
    parser.add_argument("--features", default="auto", choices=["auto", "inception", "efficientnet-lite0", "none"],
                        help="feature network for Fréchet/kernel distances (auto: the FID Inception when its weights "
                             "are installed, else EfficientNet-Lite0, named FD/KD and noted in the report)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder of reference images for FID/KID (default: true renders of shapes-world specs)")
    parser.add_argument("--reference-seeds", type=_count(1), default=None, metavar="K",
                        help="true renders per prompt in the reference set, seeds 0..K-1 (default: one per generated "
                             "image, at its seed); FID wants thousands of reference images")
    parser.add_argument("--fid-resamples", type=_count(0), default=None, metavar="N",
                        help="bootstrap resamples for FID's interval (default 200; 0: no interval)")
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
    run.add_argument("--compile", action="store_true",
                     help="torch.compile each Imagen cascade once loaded (minutes on a CPU, with a warm-up image); "
                          "pays back over long runs")
    run.add_argument("--dry-run", action="store_true",
                     help="print the work (models × items × seeds), how much the folder already holds and the time "
                          "left, from the seconds per image its manifest recorded; loads the models, samples nothing")
    _scoring_options(run)
    report = commands.add_parser("report", help="rebuild results.csv, summary.csv, report.md and report.html")
    report.add_argument("out", type=Path)
    _scoring_options(report)
    commands.add_parser("suites", help="list the built-in suites")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scoring = {k: getattr(args, k, None)
               for k in ("clip", "features", "reference", "reference_seeds", "fid_resamples", "grid_limit", "device")}
    try:
        if args.command == "suites":
            for name, path in builtin_suites().items():
                items = load_suite(path)
                print(f"{name:20s} {len(items):4d} prompts, {len({i.category for i in items})} categories  ({path})")
            return 0
        if args.command == "run":
            with launched_processes() as processes:  # one, or those torchrun started
                registry = ModelRegistry(args.device, compile=args.compile and not args.dry_run)
                asked = (args.suite, args.models, args.out, args.seeds, args.limit, args.batch_size, args.sr_limit)
                if args.dry_run:
                    lines = plan_benchmark(*asked, registry=registry, processes=processes.size)
                    if processes.main:
                        print("\n".join(lines))
                    return 0
                result = run_benchmark(*asked, registry=registry, processes=processes, **scoring)
            if result is None:
                return 0  # process 0 of the run scores, reports and says so
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
