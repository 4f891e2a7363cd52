"""Gradio demo entry point (Hugging Face Spaces' app_file).

For now a single Generate form over the shipped default model (or a pipeline folder / hub id given with
--model or IMAGEN_MODEL); the full demo (stage previews, compare, benchmark browser) is its own issue.
"""

from __future__ import annotations

import argparse
import os
import sys

from imagen_demo.loading import DEFAULT_MODEL


def build_demo(model: str):
    import gradio as gr

    from imagen_demo import ImagenPipeline

    pipe = ImagenPipeline.from_pretrained(model)

    def generate(prompt: str, seed: int):
        if not prompt.strip():
            raise gr.Error("Please describe the image you want.")
        return pipe.generate_image(prompt, seed=int(seed))

    return gr.Interface(
        generate, [gr.Textbox(label="Prompt"), gr.Number(label="Seed", value=0, precision=0)], gr.Image(label="Image"),
        title="imagen_demo", api_name="generate",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the imagen_demo web demo.")
    parser.add_argument("--model", default=os.environ.get("IMAGEN_MODEL", DEFAULT_MODEL),
                        help="pipeline folder, hub id, or 'default' (the shipped shapes model)")
    args = parser.parse_args(argv)
    build_demo(args.model).queue(max_size=16).launch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
