"""Serve the imagen_demo web demo (Hugging Face Spaces' app_file): ``python app.py [--model M] [--compare E,...] [--compile]``.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Gradio reads them; default
127.0.0.1:7860). The UI itself lives in ``imagen_demo.demo``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from imagen_demo.core.loading import DEFAULT_MODEL, CorruptWeightsError, WeightsNotFoundError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the imagen_demo web demo.")
    parser.add_argument("--model", default=os.environ.get("IMAGEN_MODEL", DEFAULT_MODEL),
                        help="the Generate tab's model: pipeline folder, hub id, or 'default' (the shipped "
                             "shapes model); env IMAGEN_MODEL")
    parser.add_argument("--compare", default=os.environ.get("IMAGEN_COMPARE"),
                        help="the Compare tab's entries, e.g. 'default,default@steps=10,./other-model'; "
                             "env IMAGEN_COMPARE (default: MODEL, MODEL@steps=10, MODEL@scheduler=ddim)")
    parser.add_argument("--reports", default=os.environ.get("IMAGEN_REPORTS", str(Path(__file__).parent / "reports")),
                        help="the Benchmark tab's folder of benchmark runs; env IMAGEN_REPORTS")
    parser.add_argument("--compile", action="store_true", default=os.environ.get("IMAGEN_COMPILE") == "1",
                        help="torch.compile the U-Nets at start (minutes on a CPU, then faster sampling; a warm-up "
                             "image is made before the page opens); env IMAGEN_COMPILE=1")
    parser.add_argument("--clip", default=os.environ.get("IMAGEN_CLIP", "auto"),
                        help="the CLIP that scores every picture: 'auto' (openai/clip-vit-base-patch32 where the hub or "
                             "its cache has it, else the shipped shapes-CLIP), any name `python -m benchmarks run "
                             "--clip` takes, or 'none'; env IMAGEN_CLIP")
    args = parser.parse_args(argv)

    # Imported after parsing: gradio and torch take seconds, and --help and a bad argument need neither.
    from imagen_demo.demo import build_demo
    from imagen_demo.registry import ModelRegistry

    try:
        demo = build_demo(args.model, registry=ModelRegistry(compile=args.compile), compare_models=args.compare,
                          reports_dir=args.reports, clip=args.clip)
    except (ValueError, WeightsNotFoundError, CorruptWeightsError) as err:  # one line, like the CLI
        print(f"error: {err}", file=sys.stderr)
        return 2
    demo.launch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
