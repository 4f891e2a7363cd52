"""ImagenPipeline: prompt -> frozen text encoder -> base U-Net -> super-resolution U-Nets -> images.

Data flows one way. Each stage samples with its own diffusers scheduler, classifier-free guidance in
one batched forward (cond and uncond stacked), and the scheduler's own dynamic thresholding. Every
super-resolution stage sees the previous stage's image upsampled and noise-augmented to a fixed level.
Every image has its own random generator, so a (prompt, seed) pair gives the same image whatever else
is in the batch.

A saved pipeline is a diffusers-style folder::

    model_index.json                       stages, text-encoder reference, sampling defaults
    unet_1/config.json, diffusion_pytorch_model.safetensors
    scheduler_1/scheduler_config.json
    unet_2/..., scheduler_2/...
    text_encoder/                          only when stored; otherwise named by reference
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from ..utils.atomic import atomic_dir
from .loading import check_safetensors, missing, resolve_folder
from .low_res import noise_augment, upsample
from ..prompting import english_rewrite
from .schedulers import check_thresholding, sampling_scheduler, scheduler_class
from .text_encoder import TextEmbeddings, TextEncoder
from .unet import EfficientUNet, TextConditioning

logger = logging.getLogger(__name__)

MODEL_INDEX = "model_index.json"
TRAINING_RECORD = "training.json"  # in a pipeline folder: how far each stage was trained, and on what data
OUTPUT_TYPES = ("pil", "np", "pt")
MAX_SEED = 2**31 - 1


@dataclass
class Stage:
    """One cascade stage: a U-Net and the scheduler its noise schedule was trained with."""

    unet: EfficientUNet
    scheduler: SchedulerMixin

    @property
    def size(self) -> int:
        return self.unet.config.sample_size


@dataclass
class ProgressEvent:
    """Handed to `callback` after every denoising step; `preview` is the predicted clean image when asked."""

    stage: int  # 0-based
    num_stages: int
    step: int  # steps done in this stage, 1-based
    num_steps: int
    done: int  # steps done over the whole cascade
    total: int
    preview: torch.Tensor | None = None  # (batch, 3, size, size) in [-1, 1]


@dataclass
class ImagenPipelineOutput:
    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    seeds: list[int]
    # Final image of every stage that ran (64x64, 256x256, ...), in the same output_type.
    stage_images: list = field(default_factory=list)


@dataclass
class StageSettings:
    """How one stage is sampled; checked on creation so bad input fails before any work."""

    guidance_scale: float
    num_inference_steps: int
    scheduler: str | type[SchedulerMixin] | None = None  # None: the stage's own scheduler class
    noise_aug_level: float = 0.0  # used by super-resolution stages
    thresholding: str = "dynamic"
    percentile: float = 0.995

    def __post_init__(self):
        w, steps, level = self.guidance_scale, self.num_inference_steps, self.noise_aug_level
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {w!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"num_inference_steps must be a whole number >= 1, got {steps!r}")
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= level <= 1.0:
            raise ValueError(f"noise_aug_level must be in [0, 1], got {level!r}")
        check_thresholding(self.thresholding, self.percentile)
        if self.scheduler is not None:
            scheduler_class(self.scheduler)
        self.guidance_scale, self.noise_aug_level = float(w), float(level)


def per_stage(value, num_stages: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_stages
    if len(values) != num_stages:
        raise ValueError(f"{name} has {len(values)} values but the pipeline has {num_stages} stages")
    return values


def _predicted_original(scheduler: SchedulerMixin, step: int, t, model_input, model_output,
                        prediction_type: str) -> torch.Tensor:
    """x0 implied by the model output at the `step`-th timestep `t` (for previews), from what the model saw.

    A scheduler with `sigmas` (DPM-Solver, UniPC, Euler, ...) is read at its own sigma, as alpha_bar =
    1 / (1 + sigma^2): its timesteps need not index alphas_cumprod (Karras sigmas round them), and those
    that keep x at x0 + sigma * eps scale the model input, which is why the formulas take that input.
    """
    if prediction_type == "sample":
        return model_output
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None:
        alpha_bar = 1 / (1 + sigmas[step].to(model_input.device, torch.float32) ** 2)
    else:
        alpha_bar = scheduler.alphas_cumprod.to(model_input.device)[int(t)]
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * model_input - (1 - alpha_bar).sqrt() * model_output
    return (model_input - (1 - alpha_bar).sqrt() * model_output) / alpha_bar.sqrt()


def _autocast(device: torch.device, dtype: torch.dtype):
    """bf16 (or `dtype`) autocast on CUDA; CPU stays float32."""
    return torch.autocast("cuda", dtype=dtype) if device.type == "cuda" else nullcontext()


def guided_prediction(unet, x, t, text: TextConditioning, guidance_scale: float, low_res=None, noise_level=None,
                      autocast_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Model output with classifier-free guidance: eps_u + w (eps_c - eps_u), cond and uncond in one forward.

    `text` is `unet.encode_text` of the conditional embeddings, followed by the unconditional ones when it is twice
    as long as x.
    """
    guided = len(text.tokens) == 2 * len(x)
    double = (lambda v: None if v is None else torch.cat([v, v])) if guided else (lambda v: v)
    with _autocast(x.device, autocast_dtype):
        out = unet(double(x), t, text, None, double(low_res), double(noise_level)).float()
    if not guided:
        return out
    cond, uncond = out.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


@torch.no_grad()
def sample_stage(
    stage: Stage,
    settings: StageSettings,
    text: TextEmbeddings,
    generators: list[torch.Generator],
    low_res: torch.Tensor | None = None,
    progress: Callable[[int, Callable[[], torch.Tensor]], None] | None = None,
    autocast_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """Run one stage's denoising loop and return images in [-1, 1].

    `text` is conditional embeddings, then unconditional ones when guidance_scale != 1. `low_res` is the
    previous stage's output (any size) for a super-resolution stage. `progress(step, preview)` is called
    after each step; `preview()` computes the predicted clean image only if the caller wants it.
    """
    unet = stage.unet
    device, batch = next(unet.parameters()).device, len(generators)
    prediction_type = unet.config.prediction_type
    # A residual stage's x0 is a difference image in [-2, 2], mostly zero: clipping it to the image range would cut
    # the edges it exists to draw, so thresholding is for stages that denoise images; the sum is clamped below.
    residual = low_res is not None and unet.config.get("low_res_residual", False)
    thresholding = "none" if residual else settings.thresholding
    scheduler = sampling_scheduler(stage.scheduler, settings.scheduler, prediction_type, thresholding, settings.percentile)
    scheduler.set_timesteps(settings.num_inference_steps, device=device)
    shape = (batch, unet.config.out_channels, stage.size, stage.size)
    x = randn_tensor(shape, generator=generators, device=device, dtype=torch.float32) * scheduler.init_noise_sigma
    level, base = None, 0.0  # base: what the stage's output is added to (the upsampled image for a residual stage)
    if low_res is not None:
        noise = randn_tensor(shape, generator=generators, device=device, dtype=torch.float32)
        upsampled = upsample(low_res.to(device), stage.size)
        base = upsampled if residual else 0.0
        low_res = noise_augment(upsampled, settings.noise_aug_level, noise)
        level = torch.full((batch,), settings.noise_aug_level, device=device)
    keep = batch if settings.guidance_scale == 1.0 else len(text)
    with _autocast(device, autocast_dtype):  # once per stage: the text's part of every step's forward
        conditioning = unet.encode_text(text.embeddings[:keep].to(device), text.mask[:keep].to(device))
    # Stochastic schedulers draw step noise from each image's own generator; deterministic ones take none.
    step_kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(x, t)
        out = guided_prediction(unet, model_input, t, conditioning, settings.guidance_scale, low_res, level, autocast_dtype)
        x_prev = scheduler.step(out, t, x, **step_kwargs).prev_sample
        if progress is not None:
            progress(i + 1, lambda: (base + _predicted_original(scheduler, i, t, model_input, out, prediction_type)).clamp(-1, 1))
        x = x_prev
    # Checked once, not every step (each check waits for the GPU): a NaN in any step's output reaches x.
    if torch.isnan(x).any():
        raise FloatingPointError(f"NaN in the model output within {len(scheduler.timesteps)} steps; the weights may be broken")
    return (base + x).clamp(-1, 1)


def _load_stage(root, entry: dict) -> Stage:
    unet_dir = root / entry["unet"]
    check_safetensors(sorted(unet_dir.glob("*.safetensors")), "U-Net weights", unet_dir)
    unet = EfficientUNet.from_pretrained(root, subfolder=entry["unet"], use_safetensors=True)
    scheduler_config = root / entry["scheduler"] / "scheduler_config.json"
    if not scheduler_config.is_file():
        raise missing("Scheduler config", scheduler_config)
    scheduler_cls = scheduler_class(json.loads(scheduler_config.read_text())["_class_name"])
    return Stage(unet, scheduler_cls.from_pretrained(root, subfolder=entry["scheduler"]))


def load_stage(name_or_path: str | os.PathLike, stage: int) -> Stage:
    """One stage (1-based) of a saved pipeline, without loading the others or the text encoder."""
    root = resolve_folder(name_or_path, "Imagen pipeline")
    index_file = root / MODEL_INDEX
    if not index_file.is_file():
        raise missing("Imagen pipeline (model_index.json)", root)
    entries = json.loads(index_file.read_text())["stages"]
    if not 1 <= stage <= len(entries):
        raise ValueError(f"{root} has {len(entries)} stages; it has no stage {stage}")
    return _load_stage(root, entries[stage - 1])


class ImagenPipeline:
    """A cascade of text-conditioned pixel-space diffusion stages sharing one frozen text encoder."""

    def __init__(self, text_encoder: TextEncoder, stages: Sequence[Stage], defaults: dict | None = None):
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        for i, stage in enumerate(stages):
            if stage.unet.config.text_embed_dim != text_encoder.dim:
                raise ValueError(
                    f"stage {i + 1} U-Net expects {stage.unet.config.text_embed_dim}-d text embeddings "
                    f"but the text encoder gives {text_encoder.dim}-d"
                )
            if i and not stage.unet.config.low_res_conditioning:
                raise ValueError(f"stage {i + 1} follows another stage, so it must be a super-resolution U-Net")
        if stages[0].unet.config.low_res_conditioning:
            raise ValueError("stage 1 must be a base U-Net (low_res_conditioning=False)")
        self.text_encoder = text_encoder
        self.stages = list(stages)
        for stage in self.stages:
            # channels_last: NHWC convolutions sample faster on this CPU (README, Performance: benchmarks/sampling_speed.py)
            stage.unet.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        # Sampling settings used when a call leaves them out; saved with the model.
        self.defaults = {"guidance_scale": 5.0, "num_inference_steps": 50, "noise_aug_level": 0.1, "scheduler": None}
        self.defaults.update(defaults or {})
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_resize=False, do_normalize=True)
        self.autocast_dtype = torch.bfloat16  # used on CUDA only; CPU stays float32
        self.trained_on: str | None = None  # the training data kind ("shapes") when the folder's record names it

    # ----------------------------------------------------------------------------------- save / load
    def save_pretrained(self, path: str | os.PathLike, store_text_encoder: bool = False, extra_files: dict | None = None) -> None:
        """Write the folder atomically: a crash mid-save leaves any previous copy intact.

        `extra_files` maps file names to text (written as is, e.g. a model card) or to JSON-able objects (written as
        JSON, e.g. the training record), beside the index.
        """
        index = {
            "_class_name": type(self).__name__,
            "text_encoder": {"name_or_path": self.text_encoder.name_or_path, "max_length": self.text_encoder.max_length},
            "stages": [],
            "defaults": self.defaults,
        }
        with atomic_dir(path) as tmp:
            if store_text_encoder:
                self.text_encoder.save_pretrained(tmp / "text_encoder")
                index["text_encoder"]["name_or_path"] = "text_encoder"
            for i, stage in enumerate(self.stages, start=1):
                stage.unet.save_pretrained(tmp / f"unet_{i}", safe_serialization=True)
                stage.scheduler.save_pretrained(tmp / f"scheduler_{i}")
                index["stages"].append({"unet": f"unet_{i}", "scheduler": f"scheduler_{i}"})
            for name, content in (extra_files or {}).items():
                (tmp / name).write_text(content if isinstance(content, str) else json.dumps(content, indent=2) + "\n")
            (tmp / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, text_encoder: TextEncoder | None = None, device: str | torch.device | None = None
    ) -> "ImagenPipeline":
        """Load a pipeline folder (or hub id, offline-first). Weights are read from safetensors only."""
        root = resolve_folder(name_or_path, "Imagen pipeline")
        index_file = root / MODEL_INDEX
        if not index_file.is_file():
            raise missing("Imagen pipeline (model_index.json)", root)
        try:
            index = json.loads(index_file.read_text())
            stage_entries = index["stages"]
            encoder_ref = index["text_encoder"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index_file} is not a valid Imagen model index: {err}") from err
        if text_encoder is None:
            name = encoder_ref["name_or_path"]
            stored = root / name
            text_encoder = TextEncoder.from_pretrained(
                stored if stored.is_dir() else name, max_length=encoder_ref.get("max_length", 64)
            )
        stages = [_load_stage(root, entry) for entry in stage_entries]
        pipe = cls(text_encoder, stages, defaults=index.get("defaults"))
        record = root / TRAINING_RECORD
        pipe.trained_on = json.loads(record.read_text()).get("data") if record.is_file() else None
        return pipe.to(device) if device is not None else pipe

    def to(self, device: str | torch.device | None = None, memory_format: torch.memory_format | None = None) -> "ImagenPipeline":
        """Move the U-Nets and the text encoder to `device`; `memory_format` lays out the U-Nets' convolution weights
        (channels_last from the start; `torch.contiguous_format` is the layout they were trained and saved in)."""
        for stage in self.stages:
            stage.unet.to(device=device, memory_format=memory_format)
        if device is not None:
            self.text_encoder.to(device)
        return self

    def compile(self, warm_up: bool = True) -> "ImagenPipeline":
        """`torch.compile` every stage's U-Net in place, for a long-lived process (the demo, a long benchmark run).

        Inductor's freezing folds the weights into the compiled code: on this CPU that bought 1.25-1.3x over eager
        channels_last where plain compiling bought 1.1x, but a U-Net whose weights change afterwards needs compiling
        again. `warm_up` samples one image at the saved defaults, so the compiling (a minute or more per stage on a
        2-core CPU) happens here and not in a caller's first request; another batch size (more images, another
        guidance of 1 or not) compiles once more on first use. Inductor keeps compiled code in its default cache
        folder (torchinductor_$USER in the temp folder), which a later process on this machine reuses.
        """
        for stage in self.stages:
            stage.unet.compile(options={"freezing": True})
        if warm_up:
            self("warm-up", seed=0)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.stages[0].unet.parameters()).device

    # ----------------------------------------------------------------------------------- sampling
    def set_scheduler(self, name_or_class, stage: int | None = None) -> None:
        """Swap the scheduler of one stage (1-based) or of all, keeping the trained noise schedule."""
        targets = self.stages if stage is None else [self.stages[stage - 1]]
        for target in targets:
            target.scheduler = scheduler_class(name_or_class).from_config(target.scheduler.config)

    def _check_prompts(self, prompt) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if prompt is not None else []
        if not prompts:
            raise ValueError("no prompt given: pass a string or a non-empty list of strings")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string describing the image, got {p!r}")
        return prompts

    def _stage_settings(self, guidance_scale, num_inference_steps, scheduler, **shared) -> list[StageSettings]:
        n = len(self.stages)
        return [
            StageSettings(w, steps, sched, **shared)
            for w, steps, sched in zip(
                per_stage(guidance_scale, n, "guidance_scale"),
                per_stage(num_inference_steps, n, "num_inference_steps"),
                per_stage(scheduler if scheduler is not None else self.defaults["scheduler"], n, "scheduler"),
            )
        ]

    def _generators(self, seed, generator, count: int) -> tuple[list[torch.Generator], list[int]]:
        """One CPU generator per image (noise is drawn on CPU, so results match across devices)."""
        if generator is not None:
            generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * count
            if len(generators) != count:
                raise ValueError(f"got {len(generators)} generators for {count} images")
            return generators, [g.initial_seed() for g in generators]
        if seed is None:
            seeds = [random.randint(0, MAX_SEED) for _ in range(count)]
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(count)]
        else:
            seeds = list(seed)
            if len(seeds) != count:
                raise ValueError(f"got {len(seeds)} seeds for {count} images")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
                raise ValueError(f"seeds must be whole numbers in [0, {MAX_SEED}], got {s!r}")
        return [torch.Generator("cpu").manual_seed(s) for s in seeds], seeds

    def _start_stage(self, image) -> tuple[int, torch.Tensor | None]:
        """Where the cascade starts: stage 1, or the stage that super-resolves a given low-res image."""
        if image is None:
            return 0, None
        tensor = self.image_processor.preprocess(image)  # PIL, numpy and [0, 1] tensors alike -> [-1, 1]
        sizes = {stage.size: i + 1 for i, stage in enumerate(self.stages[:-1])}
        if tensor.shape[-1] != tensor.shape[-2] or tensor.shape[-1] not in sizes:
            raise ValueError(
                f"image is {tuple(tensor.shape[-2:])}; to super-resolve it must be square with side in {sorted(sizes)}"
            )
        return sizes[tensor.shape[-1]], tensor.float()

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        seed: int | list[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        guidance_scale: float | Sequence[float] | None = None,
        num_inference_steps: int | Sequence[int] | None = None,
        scheduler: str | Sequence[str | None] | None = None,
        noise_aug_level: float | None = None,
        thresholding: str = "dynamic",
        dynamic_thresholding_percentile: float = 0.995,
        image: PIL.Image.Image | list[PIL.Image.Image] | torch.Tensor | None = None,
        output_type: str = "pil",
        callback: Callable[[ProgressEvent], None] | None = None,
        preview_every: int = 0,
        return_intermediates: bool = False,
        rewrite_prompts: bool = True,
    ) -> ImagenPipelineOutput:
        """Generate images for `prompt`.

        Per-stage settings (guidance_scale, num_inference_steps, scheduler) take one value for every
        stage or a list with one per stage; left out, the model's saved defaults apply. `seed` is the
        first image's seed (later images count up) or one seed per image. `image` (PIL images or a [0, 1]
        tensor) skips the stages below its size and super-resolves it. `callback` gets a ProgressEvent after
        every step, with a preview of the predicted clean image every `preview_every` steps (0 = never).
        `rewrite_prompts`: a Chinese prompt the text encoder cannot read becomes its English shapes-world caption
        (see `prompting`).
        """
        prompts = self._check_prompts(prompt)
        if rewrite_prompts:
            prompts = [english_rewrite(self.text_encoder, p) or p for p in prompts]
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a whole number >= 1, got {num_images_per_prompt!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        runs = self._stage_settings(
            self.defaults["guidance_scale"] if guidance_scale is None else guidance_scale,
            self.defaults["num_inference_steps"] if num_inference_steps is None else num_inference_steps,
            scheduler,
            noise_aug_level=self.defaults["noise_aug_level"] if noise_aug_level is None else noise_aug_level,
            thresholding=thresholding,
            percentile=dynamic_thresholding_percentile,
        )
        start, x = self._start_stage(image)
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        if negative_prompt is None or isinstance(negative_prompt, str):
            negatives = [negative_prompt or ""] * len(prompts)
        else:
            negatives = list(negative_prompt)
            if len(negatives) * num_images_per_prompt != len(prompts):
                raise ValueError(f"got {len(negatives)} negative prompts for {len(prompts) // num_images_per_prompt} prompts")
            negatives = [n for n in negatives for _ in range(num_images_per_prompt)]
        generators, seeds = self._generators(seed, generator, len(prompts))
        if x is not None and x.shape[0] not in (1, len(prompts)):
            raise ValueError(f"got {x.shape[0]} images for {len(prompts)} prompts")
        if x is not None:
            x = x.expand(len(prompts), -1, -1, -1)

        guided = any(run.guidance_scale != 1.0 for run in runs[start:])
        text = self.text_encoder.encode(prompts)
        if guided:  # the negative prompt (default: empty) stands in for the null text
            text = TextEmbeddings.cat([text, self.text_encoder.encode(negatives)])
        text = TextEmbeddings(text.embeddings.to(self.device), text.mask.to(self.device))

        total = sum(run.num_inference_steps for run in runs[start:])
        done = 0
        stage_images = []
        for index in range(start, len(self.stages)):
            run = runs[index]

            def progress(step: int, preview: Callable[[], torch.Tensor], index=index, run=run) -> None:
                nonlocal done
                done += 1
                if callback is not None:
                    wanted = preview_every > 0 and (step % preview_every == 0 or step == run.num_inference_steps)
                    callback(ProgressEvent(index, len(self.stages), step, run.num_inference_steps, done, total,
                                           preview() if wanted else None))

            try:
                x = sample_stage(self.stages[index], run, text, generators, x, progress, self.autocast_dtype)
            except FloatingPointError as err:
                raise FloatingPointError(f"stage {index + 1}: {err}") from err
            stage_images.append(x)

        convert = lambda images: self.image_processor.postprocess(images.float().cpu(), output_type=output_type)
        return ImagenPipelineOutput(
            images=convert(x),
            seeds=seeds,
            stage_images=[convert(images) for images in stage_images] if return_intermediates else [],
        )

    def generate_image(self, prompt: str, **kwargs) -> PIL.Image.Image:
        """One prompt in, one PIL image out (the seed documents' convenience)."""
        return self(prompt, num_images_per_prompt=1, output_type="pil", **kwargs).images[0]
