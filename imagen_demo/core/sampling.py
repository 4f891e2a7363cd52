"""One cascade stage's denoising loop: classifier-free guidance, the scheduler's thresholding, noise augmentation.

The pipeline runs it once per stage; training runs it for its sample grids and its held-out accuracy, so both
sample the same way. Each image has its own random generator, so a (prompt, seed) pair gives the same image
whatever else is in the batch.
"""

from __future__ import annotations

import inspect
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .low_res import noise_augment, upsample
from .schedulers import check_thresholding, sampling_scheduler, scheduler_class
from .text_encoder import TextEmbeddings
from .unet import EfficientUNet, TextConditioning

# After each step: (step index, timestep, tensors asked for by name) -> tensors to replace ("latents" only).
StepEnd = Callable[[int, torch.Tensor, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
STEP_TENSORS = ("latents", "pred_original_sample")  # what a StepEnd may ask for


@dataclass
class Stage:
    """One cascade stage: a U-Net and the scheduler that samples it (its config holds the trained noise schedule)."""

    unet: EfficientUNet
    scheduler: SchedulerMixin

    @property
    def size(self) -> int:
        return self.unet.config.sample_size

    @property
    def predicts_residual(self) -> bool:
        """A super-resolution stage whose output is added to its upsampled input (EfficientUNet's low_res_residual)."""
        return bool(self.unet.config.get("low_res_conditioning") and self.unet.config.get("low_res_residual", False))

    def default_thresholding(self) -> str:
        # A residual stage's x0 is a difference image in [-2, 2], mostly zero: clipping it to the image range would cut
        # the edges it exists to draw, so thresholding is for stages that denoise images; the sum is clamped instead.
        return "none" if self.predicts_residual else "dynamic"


@dataclass
class StageSettings:
    """How one stage is sampled; checked on creation so bad input fails before any work."""

    guidance_scale: float
    num_inference_steps: int
    scheduler: str | type[SchedulerMixin] | None = None  # None: the stage's own scheduler class
    noise_aug_level: float = 0.0  # used by super-resolution stages
    thresholding: str | None = None  # None: the stage's default (Stage.default_thresholding)
    percentile: float = 0.995

    def __post_init__(self):
        w, steps, level = self.guidance_scale, self.num_inference_steps, self.noise_aug_level
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {w!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"num_inference_steps must be a whole number >= 1, got {steps!r}")
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= level <= 1.0:
            raise ValueError(f"noise_aug_level must be in [0, 1], got {level!r}")
        check_thresholding(self.thresholding or "none", self.percentile)
        if self.scheduler is not None:
            scheduler_class(self.scheduler)
        self.guidance_scale, self.noise_aug_level = float(w), float(level)

    def thresholding_for(self, stage: Stage) -> str:
        """The mode `stage` samples with; a mode the stage cannot use is refused, not dropped."""
        mode = self.thresholding or stage.default_thresholding()
        if mode != "none" and stage.predicts_residual:
            raise ValueError(f"thresholding {mode!r} cannot apply to a stage that predicts a residual to its upsampled "
                             "input (its output is no image to hold in range): give it 'none'")
        return mode


def per_stage(value, num_stages: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_stages
    if len(values) != num_stages:
        raise ValueError(f"{name} has {len(values)} values but the pipeline has {num_stages} stages")
    return values


def predicted_original(scheduler: SchedulerMixin, step: int, t, model_input, model_output,
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
    step_end: StepEnd | None = None,
    step_tensors: Sequence[str] = (),
    autocast_dtype: torch.dtype = torch.bfloat16,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Run one stage's denoising loop and return images in [-1, 1].

    `text` is conditional embeddings, then unconditional ones when guidance_scale != 1. `low_res` is the
    previous stage's output (any size) for a super-resolution stage. After each step `step_end(i, t, tensors)` gets
    the tensors named in `step_tensors` (`STEP_TENSORS`: "latents", the sample being denoised, or
    "pred_original_sample", the clean image it predicts, in [-1, 1]) and may hand back "latents" to continue from.
    `device` is where sampling runs (default: the U-Net's; the pipeline's execution device under CPU offload).
    """
    unet = stage.unet
    device, batch = device or next(unet.parameters()).device, len(generators)
    prediction_type = unet.config.prediction_type
    residual = low_res is not None and stage.predicts_residual
    scheduler = sampling_scheduler(stage.scheduler, settings.scheduler, prediction_type, settings.thresholding_for(stage),
                                   settings.percentile)
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
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
        if step_end is not None:
            tensors = {"latents": x} if "latents" in step_tensors else {}
            if "pred_original_sample" in step_tensors:
                tensors["pred_original_sample"] = (
                    base + predicted_original(scheduler, i, t, model_input, out, prediction_type)).clamp(-1, 1)
            x = step_end(i, t, tensors).get("latents", x)
    # Checked once, not every step (each check waits for the GPU): a NaN in any step's output reaches x.
    if torch.isnan(x).any():
        raise FloatingPointError(f"NaN in the model output within {len(scheduler.timesteps)} steps; the weights may be broken")
    return (base + x).clamp(-1, 1)
