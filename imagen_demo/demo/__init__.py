"""The Gradio web demo: one module per tab, each a ``build(ctx)`` that lays out its components and events.

Adding a tab is one module with a ``build(ctx: DemoContext)`` and one line in ``TABS``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..core.loading import DEFAULT_MODEL
from ..core.pipeline import ImagenPipeline
from ..registry import ModelRegistry
from . import benchmark_tab, compare_tab, generate_tab
from .clip_score import load_clip
from .context import DemoContext
from .understanding import world_line

TABS = [("Generate", generate_tab.build), ("Compare", compare_tab.build), ("Benchmark", benchmark_tab.build)]


def default_compare(model: str) -> str:
    """The Compare tab's opening entries: the model as saved, with fewer steps, and with another sampler."""
    return f"{model},{model}@steps=10,{model}@scheduler=ddim"


def headline(pipe: ImagenPipeline) -> str:
    """What the page says the model is: its text encoder and its cascade."""
    stages = " → ".join(f"{s.size}px {s.unet.num_parameters() / 1e6:.1f}M" for s in pipe.stages)
    return (f"An open implementation of Google's Imagen: a frozen text encoder (`{pipe.prompt_encoder.name_or_path}`) "
            f"conditions a cascade of pixel-space diffusion U-Nets ({stages}).")


def build_demo(
    model: str = DEFAULT_MODEL,
    registry: ModelRegistry | None = None,
    compare_models: str | None = None,
    max_images: int = 4,
    max_compare: int = 4,
    concurrency: int = 1,
    max_queue: int = 90,
    reports_dir: str | Path = "reports",
    clip: str | None = "auto",
) -> gr.Blocks:
    """The whole demo, queued: at most `max_queue` waiting requests and `concurrency` sampling at once. `clip` scores
    each picture (`auto`: a cached hub CLIP, else shapes-CLIP; None: no score).

    The default queue holds about two minutes of work: 90 requests at the shipped model's defaults, 1.3 s a picture on
    two cores (`python -m benchmarks.sampling_speed`), so a crowd waits with its place shown rather than being
    turned away, and only a longer wait is refused."""
    registry = registry or ModelRegistry()
    ctx = DemoContext(registry, model, compare_models or default_compare(model),
                      max_images=max_images, max_compare=max_compare, concurrency=concurrency,
                      reports_dir=Path(reports_dir), clip=load_clip(clip, registry.device))
    pipe = ctx.registry.get(model).pipeline  # loads the model now, not on the first request
    if not isinstance(pipe, ImagenPipeline):  # the Generate tab has a field per cascade stage
        raise ValueError(f"the demo's model must be an Imagen pipeline; {model!r} is a {type(pipe).__name__}")
    with gr.Blocks(title="imagen_demo") as demo:
        gr.Markdown(f"# imagen_demo\n{headline(pipe)} Model: `{model}`.")
        if line := world_line(pipe):
            gr.Markdown(line, elem_id="world-line")
        with gr.Tabs():
            for label, build in TABS:
                with gr.Tab(label):
                    build(ctx)
    return demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
