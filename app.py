"""Serve the imagen_demo web demo (Hugging Face Spaces' app_file): ``python app.py [--port P] [--model M] [--compile]``.

The port is --port or GRADIO_SERVER_PORT, and one that is taken is an error; without either, Gradio takes 7860 or
the next free port, and the line printed at start says which and why. The host comes from GRADIO_SERVER_NAME
(Gradio reads it; default 127.0.0.1). The UI itself lives in ``imagen_demo.demo``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from imagen_demo.core.loading import DEFAULT_MODEL, CorruptWeightsError, WeightsNotFoundError

DEFAULT_PORT = 7860  # Gradio's first choice when no port is chosen


def serving_line(url: str, port: int, chosen: int | None) -> str:
    """What the app prints once it serves: the address it really serves on, and why that is not 7860 when not."""
    if chosen is not None or port == DEFAULT_PORT:
        return f"imagen_demo: serving on {url}"
    taken = f"port {DEFAULT_PORT} is" if port == DEFAULT_PORT + 1 else f"ports {DEFAULT_PORT}–{port - 1} are"
    return (f"imagen_demo: serving on {url} (not {DEFAULT_PORT}: {taken} in use by another program; choose the "
            "port with --port or GRADIO_SERVER_PORT)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the imagen_demo web demo.")
    parser.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT"),
                        help=f"the port to serve on (env GRADIO_SERVER_PORT); one in use is an error. Default: "
                             f"{DEFAULT_PORT}, or the next free port when it is in use")
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
    try:
        demo.launch(server_port=args.port, prevent_thread_lock=True, quiet=True)
    except OSError:  # no free port: the chosen one, or every one Gradio tries from 7860 on, is in use
        print(f"error: cannot serve on port {args.port or f'{DEFAULT_PORT} or the next 99'}: in use by another "
              "program. Choose a free one with --port or GRADIO_SERVER_PORT.", file=sys.stderr)
        return 2
    print(serving_line(demo.local_url, demo.server_port, args.port), flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
