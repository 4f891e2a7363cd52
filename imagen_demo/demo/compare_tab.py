"""The Compare tab: one prompt and seed through several model entries, side by side, each with its time and its
CLIP score.

Entries are the registry's ``NAME[@key=value,...]``, so "the same weights at 10 steps" and "another
model" are compared the same way; weights load once per model and are shared with the Generate tab.
"""

from __future__ import annotations

import time

import gradio as gr

from ..utils.markdown import markdown_table
from .clip_score import shown_scores, with_score
from .context import DemoContext
from .picture_files import picture_files
from .understanding import panel
from .validation import checked_values, compare_entries, load_entries, prompt_text, seed_value, user_errors, validator


def build(ctx: DemoContext) -> None:
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", value="a red circle above a blue square", scale=3)
        seed = gr.Number(label="Seed", value=0, precision=0, scale=1)
    # Read with the demo's own model; an entry with another text encoder may read the prompt differently.
    panel(ctx.registry.get(ctx.model).pipeline, prompt, elem_id="compare-understood")
    models = gr.Textbox(
        label=f"Entries to compare (comma-separated, at most {ctx.max_compare})", value=ctx.compare_models,
        info="NAME[@key=value,...]; keys: steps, guidance, scheduler, noise_aug, thresholding, percentile; "
             "per-stage values with /, e.g. default@steps=25/5,guidance=7",
    )
    button = gr.Button("Compare", variant="primary")
    gallery = gr.Gallery(label="Side by side", format="png", columns=ctx.max_compare, fit_columns=False, height="auto")
    timings = gr.Markdown(label="Seconds and CLIP score per entry")
    header = ["entry", "seconds"] + ([f"CLIP score ({ctx.clip.label})"] if ctx.clip else [])

    fields = {"prompt": prompt, "seed": seed, "models": models}

    def checks(values: dict) -> dict:
        return {"prompt": lambda: prompt_text(values["prompt"]),
                "seed": lambda: seed_value(values["seed"], False, 1),
                "models": lambda: compare_entries(values["models"], ctx.sources, ctx.max_compare)}

    def compare(progress=gr.Progress(), **values):
        read = checked_values(checks(values))
        text, first = read["prompt"], read["seed"]
        entries = load_entries(ctx.registry, read["models"])
        shown, rows = [], []
        with picture_files() as saved:
            for index, model in enumerate(entries):
                def report(done: int, total: int, desc=f"{model.name} ({index + 1}/{len(entries)})") -> None:
                    progress((done, total), desc=desc)

                started = time.perf_counter()
                with user_errors():
                    image = model.generate([text], [first], progress=report)[0]
                seconds = time.perf_counter() - started
                score = shown_scores(ctx.clip, [image], text)[0]
                shown.append((saved(image), with_score(ctx.clip, f"{model.name} · {seconds:.1f} s", score)))
                rows.append((f"`{model.name}`", f"{seconds:.2f}", *([score] if ctx.clip else [])))
                yield shown, markdown_table(header, rows)

    button.click(compare, None, [gallery, timings], inputs_kwargs=fields, validator=validator(fields, checks),
                 api_name="compare", show_progress_on=gallery, **ctx.event_options())
