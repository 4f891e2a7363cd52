"""ImagenPipeline: prompt -> frozen text encoder -> base U-Net -> super-resolution U-Nets -> images, as a diffusers
`DiffusionPipeline`.

Data flows one way. Each stage samples with its own registered scheduler, classifier-free guidance in one batched
forward (cond and uncond stacked), and the scheduler's own dynamic thresholding (`core.sampling`). Every
super-resolution stage sees the previous stage's image upsampled and noise-augmented to a fixed level.

Its components are registered as in any diffusers pipeline, so saving, loading, `components`, `to`, `from_pipe`,
progress bars, `callback_on_step_end` and model CPU offload are diffusers' own. A saved pipeline is a diffusers folder::

    model_index.json                 components, text-encoder name, max text length, sampling defaults
    pipeline.py                      names this class, for DiffusionPipeline.from_pretrained(..., custom_pipeline=...)
    unet_1/config.json, diffusion_pytorch_model.safetensors
    scheduler_1/scheduler_config.json
    unet_2/..., scheduler_2/...      (up to MAX_STAGES stages)
    text_encoder/, tokenizer/        only when stored; the shipped model names its encoder instead ("minilm")

so ``diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipeline", trust_remote_code=True)`` loads
it where this package is installed, as ``ImagenPipeline.from_pretrained(folder)`` does.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..utils.atomic import atomic_dir
from .defaults import SamplingDefaults, recipe_defaults
from .loading import check_safetensors, missing, resolve_folder
from .sampling import STEP_TENSORS, Stage, StageSettings, per_stage, sample_stage
from .schedulers import scheduler_class
from .text_encoder import TextEmbeddings, TextEncoder
from .unet import EfficientUNet

MAX_STAGES = 3  # the paper's cascade: 64 px base, 64 -> 256, 256 -> 1024
OUTPUT_TYPES = ("pil", "np", "pt")
MAX_SEED = 2**31 - 1
PIPELINE_FILE = "pipeline.py"  # what diffusers' custom_pipeline="pipeline" reads in a saved folder
PIPELINE_CODE = '''"""This folder's pipeline class, for diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline="pipeline",
trust_remote_code=True). The code is the installed imagen_demo package's (pip install imagen-demo)."""

from imagen_demo.core.pipeline import ImagenPipeline  # noqa: F401
'''


@dataclass
class ImagenPipelineOutput(BaseOutput):
    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    seeds: list[int]
    # Final image of every stage that ran (64x64, 256x256, ...), in the same output_type.
    stage_images: list = field(default_factory=list)


def load_stage(name_or_path: str | os.PathLike, stage: int) -> Stage:
    """One stage (1-based) of a saved pipeline, without loading the others or the text encoder."""
    root = resolve_folder(name_or_path, "Imagen pipeline")
    index = _read_index(root)
    names = [f"unet_{k}" for k in range(1, MAX_STAGES + 1) if (index.get(f"unet_{k}") or [None])[0] is not None]
    if not 1 <= stage <= len(names):
        raise ValueError(f"{root} has {len(names)} stages; it has no stage {stage}")
    _check_weights(root, f"unet_{stage}", "U-Net weights")
    unet = EfficientUNet.from_pretrained(root, subfolder=f"unet_{stage}", use_safetensors=True)
    scheduler_config = root / f"scheduler_{stage}" / SchedulerMixin.config_name
    if not scheduler_config.is_file():
        raise missing("Scheduler config", scheduler_config)
    cls = scheduler_class(json.loads(scheduler_config.read_text())["_class_name"])
    return Stage(unet, cls.from_pretrained(root, subfolder=f"scheduler_{stage}"))


def _read_index(root: Path) -> dict:
    index_file = root / DiffusionPipeline.config_name
    if not index_file.is_file():
        raise missing(f"Imagen pipeline ({DiffusionPipeline.config_name})", root)
    try:
        return json.loads(index_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{index_file} is not a valid model index: {err}") from err


def _check_weights(root: Path, component: str, what: str) -> None:
    folder = root / component
    check_safetensors(sorted(folder.glob("*.safetensors")), what, folder)


class ImagenPipeline(DiffusionPipeline):
    """A cascade of text-conditioned pixel-space diffusion stages sharing one frozen text encoder.

    Stage k is `unet_k` sampled by `scheduler_k`; stage 1 is the base, every later one super-resolves the one before.
    The text encoder and its tokenizer are stored with the pipeline, or, with `text_encoder_name_or_path`, named
    (a packaged short name such as "minilm", a folder or a hub id) and loaded from there.
    """

    model_cpu_offload_seq = "text_encoder->unet_1->unet_2->unet_3"
    _optional_components = ["text_encoder", "tokenizer", "unet_2", "scheduler_2", "unet_3", "scheduler_3"]
    _callback_tensor_inputs = list(STEP_TENSORS)

    def __init__(
        self,
        unet_1: EfficientUNet,
        scheduler_1: SchedulerMixin,
        text_encoder: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        unet_2: EfficientUNet | None = None,
        scheduler_2: SchedulerMixin | None = None,
        unet_3: EfficientUNet | None = None,
        scheduler_3: SchedulerMixin | None = None,
        text_encoder_name_or_path: str | None = None,
        max_text_length: int = 64,
        sampling_defaults: dict | None = None,
    ):
        super().__init__()
        unets, schedulers = [unet_1, unet_2, unet_3], [scheduler_1, scheduler_2, scheduler_3]
        present = [(unet is not None, scheduler is not None) for unet, scheduler in zip(unets, schedulers)]
        if present != sorted(present, reverse=True) or any(u != s for u, s in present):
            raise ValueError("stages are unet_1, scheduler_1, then unet_2, scheduler_2, ...: each U-Net with its "
                             "scheduler, and no stage without the ones before it")
        if text_encoder is None or tokenizer is None:
            if text_encoder_name_or_path is None:
                raise ValueError("a pipeline needs a text encoder and its tokenizer, or the name of one (text_encoder_name_or_path)")
            named = TextEncoder.from_pretrained(text_encoder_name_or_path, max_length=max_text_length)
            text_encoder, tokenizer = named.model, named.tokenizer
        by_name = text_encoder_name_or_path is not None
        self.register_modules(
            text_encoder=None if by_name else text_encoder, tokenizer=None if by_name else tokenizer,
            **{f"unet_{k}": unets[k - 1] for k in range(1, MAX_STAGES + 1)},
            **{f"scheduler_{k}": schedulers[k - 1] for k in range(1, MAX_STAGES + 1)},
        )
        if by_name:  # registered as (None, None), so save_pretrained writes the name and not the weights
            self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.register_to_config(text_encoder_name_or_path=text_encoder_name_or_path, max_text_length=max_text_length)
        self._prompt_encoder: TextEncoder | None = None
        self._check_stages()
        for stage in self.stages:
            # channels_last: NHWC convolutions sample faster on a CPU (docs/performance.md: benchmarks/sampling_speed.py)
            stage.unet.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.defaults = SamplingDefaults.from_dict(sampling_defaults)
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_resize=False, do_normalize=True)
        self.autocast_dtype = torch.bfloat16  # used on CUDA only; CPU stays float32

    @classmethod
    def from_stages(cls, text_encoder: TextEncoder, stages: Sequence[Stage], defaults: dict | None = None,
                    store_text_encoder: bool = False) -> "ImagenPipeline":
        """A cascade from stages and a loaded encoder (what training assembles). `defaults` is a recipe's [defaults]
        table (`core.defaults.recipe_defaults`): its `scheduler` becomes every stage's registered scheduler class. The
        encoder is saved by its name unless `store_text_encoder`."""
        sampling, sampler = recipe_defaults(defaults)
        if not 1 <= len(stages) <= MAX_STAGES:
            raise ValueError(f"a pipeline has 1 to {MAX_STAGES} stages, got {len(stages)}")
        samplers = per_stage(sampler, len(stages), "scheduler")
        components = {}
        for k, (stage, name) in enumerate(zip(stages, samplers), start=1):
            scheduler = stage.scheduler if name is None else scheduler_class(name).from_config(stage.scheduler.config)
            components |= {f"unet_{k}": stage.unet, f"scheduler_{k}": scheduler}
        return cls(**components, text_encoder=text_encoder.model, tokenizer=text_encoder.tokenizer,
                   text_encoder_name_or_path=None if store_text_encoder else str(text_encoder.name_or_path),
                   max_text_length=text_encoder.max_length, sampling_defaults=sampling.to_dict())

    # ----------------------------------------------------------------------------------- the cascade
    @property
    def stages(self) -> list[Stage]:
        """The registered stages, base first (a view: set `unet_k` / `scheduler_k` to change one)."""
        return [Stage(getattr(self, f"unet_{k}"), getattr(self, f"scheduler_{k}"))
                for k in range(1, MAX_STAGES + 1) if getattr(self, f"unet_{k}") is not None]

    @property
    def defaults(self) -> SamplingDefaults:
        """The settings a call leaves out; saved in model_index.json as `sampling_defaults`."""
        return SamplingDefaults.from_dict(self.config.sampling_defaults)

    @defaults.setter
    def defaults(self, value: SamplingDefaults) -> None:
        self._settings(value, {})  # a default a stage cannot use is refused here, where it is given
        self.register_to_config(sampling_defaults=value.to_dict())

    @property
    def prompt_encoder(self) -> TextEncoder:
        """The registered text encoder and tokenizer with the padding and per-prompt cache that sampling uses."""
        encoder = self._prompt_encoder
        if encoder is None or encoder.model is not self.text_encoder or encoder.tokenizer is not self.tokenizer:
            name = self.config.text_encoder_name_or_path or self.text_encoder.name_or_path
            encoder = self._prompt_encoder = TextEncoder(self.tokenizer, self.text_encoder, name, self.config.max_text_length)
        return encoder

    def _check_stages(self) -> None:
        stages = self.stages
        for i, stage in enumerate(stages):
            if stage.unet.config.text_embed_dim != self.text_encoder.config.hidden_size:
                raise ValueError(f"stage {i + 1} U-Net expects {stage.unet.config.text_embed_dim}-d text embeddings "
                                 f"but the text encoder gives {self.text_encoder.config.hidden_size}-d")
            if i and not stage.unet.config.low_res_conditioning:
                raise ValueError(f"stage {i + 1} follows another stage, so it must be a super-resolution U-Net")
        if stages[0].unet.config.low_res_conditioning:
            raise ValueError("stage 1 must be a base U-Net (low_res_conditioning=False)")

    # ----------------------------------------------------------------------------------- save / load
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "ImagenPipeline":
        """diffusers' loader (safetensors only) after the offline-first name resolution (`core.loading`: shipped
        names such as "default", local folders, the hub cache) and a check that every U-Net's weights are whole."""
        root = resolve_folder(pretrained_model_name_or_path, "Imagen pipeline")
        index = _read_index(root)
        for name in ("unet_1", "unet_2", "unet_3", "text_encoder"):
            if (index.get(name) or [None])[0] is not None:
                _check_weights(root, name, "U-Net weights" if name.startswith("unet") else "Text encoder weights")
        return super().from_pretrained(root, **{**kwargs, "use_safetensors": True})

    def save_pretrained(self, save_directory: str | os.PathLike, extra_files: dict | None = None, **kwargs) -> None:
        """diffusers' save, written to a temporary folder that then replaces `save_directory` (a crash mid-save leaves
        any previous copy whole), with `pipeline.py` for diffusers' custom_pipeline loading. `extra_files` maps file
        names to text (a model card) or to JSON-able objects (a training record), written beside the index."""
        with atomic_dir(save_directory) as tmp:
            super().save_pretrained(tmp, **kwargs)
            (tmp / PIPELINE_FILE).write_text(PIPELINE_CODE)
            for name, content in (extra_files or {}).items():
                (tmp / name).write_text(content if isinstance(content, str) else json.dumps(content, indent=2) + "\n")

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

    # ----------------------------------------------------------------------------------- progress of a call
    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the current call over every stage it runs (diffusers' name)."""
        return self._num_timesteps

    @property
    def stage_index(self) -> int:
        """The stage the current call is sampling, 0-based."""
        return self._stage_index

    @property
    def stage_num_timesteps(self) -> int:
        """Denoising steps of the stage the current call is sampling."""
        return self._stage_num_timesteps

    # ----------------------------------------------------------------------------------- checks
    def _check_prompts(self, prompt) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if prompt is not None else []
        if not prompts:
            raise ValueError("no prompt given: pass a string or a non-empty list of strings")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string describing the image, got {p!r}")
        return prompts

    def _settings(self, defaults: SamplingDefaults, given: dict, start: int = 0) -> list[StageSettings]:
        """Every stage's settings: `given` (the call's, None left out) over `defaults`. A setting that no stage from
        `start` on can use is refused, as is thresholding for a stage that predicts a residual."""
        given = {key: value for key, value in given.items() if value is not None}
        values = {**defaults.to_dict(), **given}
        stages = self.stages
        n = len(stages)
        settings = [
            StageSettings(w, steps, noise_aug_level=values["noise_aug_level"], thresholding=mode,
                          percentile=values["dynamic_thresholding_percentile"])
            for w, steps, mode in zip(per_stage(values["guidance_scale"], n, "guidance_scale"),
                                      per_stage(values["num_inference_steps"], n, "num_inference_steps"),
                                      per_stage(values["thresholding"], n, "thresholding"))
        ]
        modes = []
        for k in range(start, n):
            try:
                modes.append(settings[k].thresholding_for(stages[k]))
            except ValueError as err:
                raise ValueError(f"stage {k + 1}: {err}; e.g. thresholding={[s.default_thresholding() for s in stages]}") from None
        if "noise_aug_level" in given and not any(stage.unet.config.low_res_conditioning for stage in stages[start:]):
            raise ValueError("noise_aug_level is for super-resolution stages, and this call runs none")
        if "dynamic_thresholding_percentile" in given and "dynamic" not in modes:
            raise ValueError("dynamic_thresholding_percentile is for dynamic thresholding, and no stage of this call uses it")
        return settings

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

    def _negatives(self, negative_prompt, count: int, per_prompt: int) -> list[str]:
        if negative_prompt is None or isinstance(negative_prompt, str):
            return [negative_prompt or ""] * count
        negatives = list(negative_prompt)
        if len(negatives) * per_prompt != count:
            raise ValueError(f"got {len(negatives)} negative prompts for {count // per_prompt} prompts")
        return [n for n in negatives for _ in range(per_prompt)]

    # ----------------------------------------------------------------------------------- sampling
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
        noise_aug_level: float | None = None,
        thresholding: str | Sequence[str] | None = None,
        dynamic_thresholding_percentile: float | None = None,
        image: PIL.Image.Image | list[PIL.Image.Image] | torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        return_intermediates: bool = False,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagenPipelineOutput | tuple:
        """Generate images for `prompt`.

        Per-stage settings (guidance_scale, num_inference_steps, thresholding) take one value for every stage or a
        list with one per stage; left out (None), the model's saved `defaults` apply, and one that no stage of the
        call can use is refused. `seed` is the first image's seed (later images count up) or one seed per image.
        `image` (PIL images or a [0, 1] tensor) skips the stages below its size and super-resolves it.
        `callback_on_step_end(pipe, step, timestep, tensors)` runs after every step of every stage, as in diffusers'
        pipelines: `tensors` holds what `callback_on_step_end_tensor_inputs` names ("latents", the sample being
        denoised, default; "pred_original_sample", the clean image it predicts in [-1, 1]) and it returns a dict,
        whose "latents" replace the sample. `stage_index`, `stage_num_timesteps` and `num_timesteps` say where the
        call is. The sampler of stage k is the class of `scheduler_k` (`core.schedulers.swap_schedulers`).
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        tensor_inputs = ["latents"] if callback_on_step_end_tensor_inputs is None else list(callback_on_step_end_tensor_inputs)
        if unknown := set(tensor_inputs) - set(self._callback_tensor_inputs):
            raise ValueError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {sorted(unknown)}")
        prompts = self._check_prompts(prompt)
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a whole number >= 1, got {num_images_per_prompt!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        start, x = self._start_stage(image)
        runs = self._settings(self.defaults, dict(
            guidance_scale=guidance_scale, num_inference_steps=num_inference_steps, noise_aug_level=noise_aug_level,
            thresholding=thresholding, dynamic_thresholding_percentile=dynamic_thresholding_percentile), start)
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        negatives = self._negatives(negative_prompt, len(prompts), num_images_per_prompt)
        generators, seeds = self._generators(seed, generator, len(prompts))
        if x is not None and x.shape[0] not in (1, len(prompts)):
            raise ValueError(f"got {x.shape[0]} images for {len(prompts)} prompts")
        if x is not None:
            x = x.expand(len(prompts), -1, -1, -1)

        device = self._execution_device
        guided = any(run.guidance_scale != 1.0 for run in runs[start:])
        text = self.prompt_encoder.encode(prompts)
        if guided:  # the negative prompt (default: empty) stands in for the null text
            text = TextEmbeddings.cat([text, self.prompt_encoder.encode(negatives)])
        text = TextEmbeddings(text.embeddings.to(device), text.mask.to(device))

        stages = self.stages
        self._num_timesteps = sum(run.num_inference_steps for run in runs[start:])
        stage_images = []
        with self.progress_bar(total=self._num_timesteps) as bar:
            for index in range(start, len(stages)):
                self._stage_index, self._stage_num_timesteps = index, runs[index].num_inference_steps
                bar.set_description(f"stage {index + 1}/{len(stages)}")

                def step_end(step: int, t: torch.Tensor, tensors: dict) -> dict:
                    bar.update()
                    return {} if callback_on_step_end is None else callback_on_step_end(self, step, t, tensors)

                try:
                    x = sample_stage(stages[index], runs[index], text, generators, x, step_end,
                                     tensor_inputs if callback_on_step_end is not None else (), self.autocast_dtype, device)
                except FloatingPointError as err:
                    raise FloatingPointError(f"stage {index + 1}: {err}") from err
                stage_images.append(x)
        self.maybe_free_model_hooks()

        convert = lambda images: self.image_processor.postprocess(images.float().cpu(), output_type=output_type)  # noqa: E731
        out = ImagenPipelineOutput(images=convert(x), seeds=seeds,
                                   stage_images=[convert(images) for images in stage_images] if return_intermediates else [])
        return out if return_dict else out.to_tuple()

    def generate_image(self, prompt: str, **kwargs) -> PIL.Image.Image:
        """One prompt in, one PIL image out (the seed documents' convenience)."""
        return self(prompt, num_images_per_prompt=1, output_type="pil", **kwargs).images[0]
