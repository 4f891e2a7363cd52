"""The Generate tab: one prompt through the loaded cascade, with live previews, every stage's result, and the
CLIP score under each image.

Each stage of the loaded pipeline gets its own guidance and steps fields, so a 3-stage cascade needs no
code change. The API endpoint ``/generate`` takes them as ``guidance_1``, ``steps_1``, ``guidance_2``, ...
"""

from __future__ import annotations

import shlex
import time

import gradio as gr

from ..core.loading import DEFAULT_MODEL
from ..core.pipeline import ImagenPipeline
from ..core.sampling import per_stage
from ..core.schedulers import SCHEDULERS, THRESHOLDING_MODES, swap_schedulers
from ..progress import ProgressEvent, progress_callback
from ..prompting import english_rewrite
from .clip_score import shown_scores, with_score
from .context import DemoContext
from .streaming import run_streaming
from .understanding import panel, rewrite_note
from .validation import guidance_value, prompt_text, seed_value, steps_value, truncation_notice, user_errors

PREVIEW_EVERY = 5  # steps between streamed previews (each stage's last step always gives one)
EXAMPLES = [  # prompt, seed, random seed: an example gives the same picture every time
    ["a red circle above a blue square", 0, False],
    ["two green stars", 1, False],
    ["a yellow triangle to the left of a purple cross", 2, False],
]
# Pipeline keyword (or the demo's sampler and rewrite switch) -> the `python -m imagen_demo generate` option that sets it.
CLI_OPTIONS = {
    "negative_prompt": "--negative-prompt", "seed": "--seed", "num_images_per_prompt": "--num-images",
    "num_inference_steps": "--steps", "guidance_scale": "--guidance", "scheduler": "--scheduler",
    "noise_aug_level": "--noise-aug", "thresholding": "--thresholding",
    "dynamic_thresholding_percentile": "--percentile", "rewrite": "--no-rewrite",
}


def own_scheduler(pipe: ImagenPipeline) -> str:
    """The sampler the model is saved with (its base stage's scheduler), by short name where it has one."""
    cls = type(pipe.stages[0].scheduler)
    return next((name for name, known in SCHEDULERS.items() if known is cls), cls.__name__)


def thresholding_choice(pipe: ImagenPipeline) -> tuple[str, str, list[bool]]:
    """(the saved mode of the first stage that can threshold, the radio's label, which stages it applies to): a stage
    that predicts a residual is never thresholded, and the label says so rather than the radio silently doing nothing."""
    stages = pipe.stages
    applies = [not stage.predicts_residual for stage in stages]
    saved = per_stage(pipe.defaults.thresholding, len(stages), "thresholding")
    mode = next((mode or stage.default_thresholding() for mode, stage, a in zip(saved, stages, applies) if a), "none")
    label = "Thresholding"
    if not all(applies):
        on = ", ".join(str(i + 1) for i, a in enumerate(applies) if a)
        off = ", ".join(str(i + 1) for i, a in enumerate(applies) if not a)
        label += f" (stage {on}; stage {off} predicts a residual and is never thresholded)"
    return mode, label, applies


def cli_command(model: str, prompt: str, settings: dict) -> str:
    """The shell command that makes the same images (the CLI makes the same pipeline call)."""
    args = ["python", "-m", "imagen_demo", "generate"]
    if model != DEFAULT_MODEL:
        args += ["--model", model]
    for key, value in settings.items():
        if isinstance(value, bool):  # a switch: only its "off" has an option
            args += [] if value else [CLI_OPTIONS[key]]
        elif value is not None:
            args += [CLI_OPTIONS[key], ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join([*args, "--", prompt])  # "--": a prompt starting with "-" stays the prompt


def build(ctx: DemoContext) -> None:
    pipe: ImagenPipeline = ctx.registry.get(ctx.model).pipeline  # build_demo checked that it is one
    sizes = [stage.size for stage in pipe.stages]
    numbers = range(1, len(sizes) + 1)
    defaults = pipe.defaults
    guidance_defaults = per_stage(defaults.guidance_scale, len(sizes), "guidance_scale")
    steps_defaults = per_stage(defaults.num_inference_steps, len(sizes), "num_inference_steps")
    samplers = list(dict.fromkeys([own_scheduler(pipe), *SCHEDULERS]))
    thresholding_mode, thresholding_label, thresholded = thresholding_choice(pipe)

    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", placeholder="a red circle above a blue square", lines=2)
            rewrite = gr.Checkbox(label="rewrite a prompt the text encoder cannot read (Chinese) into English",
                                  value=True)
            panel(pipe, prompt, rewrite, elem_id="generate-understood", api_name="understand")
            negative = gr.Textbox(label="Negative prompt", value="", placeholder="what to steer away from (optional)")
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0)
                randomize = gr.Checkbox(label="random seed", value=True)
                num_images = gr.Slider(1, ctx.max_images, value=1, step=1, label="Images")
            with gr.Accordion("Advanced", open=False):
                stage_fields = {}
                for i, size, guidance, steps in zip(numbers, sizes, guidance_defaults, steps_defaults):
                    with gr.Row():
                        what = "base" if i == 1 else "super-resolution"
                        stage_fields[f"guidance_{i}"] = gr.Number(value=guidance, step=0.5,
                                                               label=f"Guidance · stage {i} ({what}, {size} px)")
                        stage_fields[f"steps_{i}"] = gr.Number(label=f"Steps · stage {i}", value=steps, precision=0)
                scheduler = gr.Dropdown(samplers, value=samplers[0], label="Scheduler")
                noise_aug = gr.Slider(0, 1, value=defaults.noise_aug_level, step=0.01, visible=len(sizes) > 1,
                                      label="Noise-augmentation level seen by the super-resolution stages")
                thresholding = gr.Radio(list(THRESHOLDING_MODES), value=thresholding_mode, label=thresholding_label)
                percentile = gr.Slider(0.9, 1.0, value=defaults.dynamic_thresholding_percentile, step=0.001,
                                       label="Dynamic thresholding percentile")
            button = gr.Button("Generate", variant="primary")
            # Not cached: caching samples every example at start-up.
            gr.Examples(EXAMPLES, [prompt, seed, randomize], cache_examples=False)
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Images", format="png", columns=2, fit_columns=False, height="auto",
                                 elem_id="generate-gallery")
            info = gr.Markdown(label="Seed and how to reproduce", elem_id="generate-info")
            stages = gr.Gallery(label="Stage by stage", format="png", columns=len(sizes), height="auto")

    def generate(prompt, negative_prompt, seed, randomize_seed, num_images, scheduler, noise_aug_level, thresholding,
                 percentile, rewrite, progress=gr.Progress(), **stage_fields):
        text = prompt_text(prompt)
        with user_errors():
            english = english_rewrite(pipe, text) if rewrite else None
        if notice := truncation_notice(pipe.prompt_encoder, english or text):
            gr.Warning(notice)
        count = int(num_images)
        settings = {  # the pipeline call's keywords; each a stage cannot use is left out (the fields' labels say so)
            "negative_prompt": (negative_prompt or "").strip() or None,
            "seed": seed_value(seed, randomize_seed, count),
            "num_images_per_prompt": count,
            "num_inference_steps": [steps_value(stage_fields[f"steps_{i}"], f"Steps of stage {i}") for i in numbers],
            "guidance_scale": [guidance_value(stage_fields[f"guidance_{i}"], f"Guidance of stage {i}")
                               for i in numbers],
            "noise_aug_level": noise_aug_level if len(sizes) > 1 else None,
            "thresholding": [thresholding if applies else "none" for applies in thresholded],
            "dynamic_thresholding_percentile": percentile if thresholding == "dynamic" and any(thresholded) else None,
        }
        own = scheduler == samplers[0]  # the model's own sampler: the command needs no --scheduler either
        switches = {"scheduler": None if own else scheduler, "rewrite": bool(rewrite)}  # for the command line
        sampler = pipe
        if not own:
            sampler = swap_schedulers(pipe, scheduler)
            sampler.set_progress_bar_config(disable=True)

        def show(event: ProgressEvent):
            stage = f"stage {event.stage + 1}/{event.num_stages}"
            progress((event.done, event.total), desc=f"{stage} · {sizes[event.stage]} px")
            if event.preview is None:
                return None
            caption = f"preview · {stage} · step {event.step}/{event.num_steps}"
            images = pipe.image_processor.postprocess(event.preview.float().cpu(), output_type="pil")
            return [(image, caption) for image in images], gr.skip(), gr.skip(), gr.skip()

        def sample(report):
            return sampler(english or text, **settings, **progress_callback(report, PREVIEW_EVERY), return_intermediates=True)

        started = time.perf_counter()
        with user_errors():
            out = yield from run_streaming(sample, show)
        seconds = time.perf_counter() - started
        first = settings["seed"]
        seeds = f"seed {first}" if count == 1 else f"seeds {first}–{first + count - 1}"
        note = (f"{rewrite_note(english)}\n\n" if english else "") + (
            f"**{count} image{'s' * (count > 1)} in {seconds:.1f} s, {seeds}.** To reproduce, untick "
            f"*random seed*, enter seed {first} and keep these settings, or run:\n\n"
            f"```bash\n{cli_command(ctx.model, english or text, {**settings, **switches})}\n```")
        by_stage = [(images[i], f"image {i + 1} · stage {k + 1} · {sizes[k]} px")
                    for i in range(count) for k, images in enumerate(out.stage_images)]
        scores = shown_scores(ctx.clip, out.images, english or text)
        yield ([(image, with_score(ctx.clip, f"seed {s}", score)) for image, s, score in zip(out.images, out.seeds, scores)],
               by_stage, note, first)

    gr.on([button.click, prompt.submit], generate,
          [prompt, negative, seed, randomize, num_images, scheduler, noise_aug, thresholding, percentile, rewrite],
          [gallery, stages, info, seed], inputs_kwargs=stage_fields, api_name="generate", show_progress_on=gallery,
          **ctx.event_limits())
