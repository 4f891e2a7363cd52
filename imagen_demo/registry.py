"""One interface for every model the benchmark and the demo compare: ``generate(prompts, seeds, **settings)``.

A model entry is written ``NAME[@key=value,...]``: NAME is a shipped model ("default"), a pipeline
folder or a hub id; the settings after ``@`` fix sampling options for that entry, so the same weights
under different settings are separate entries that share one loaded pipeline::

    default                         the shipped shapes model at its saved defaults
    default@steps=10                every stage at 10 steps
    default@steps=25/10,guidance=7  per-stage values are separated by "/"
    ./runs/my-sd-folder@steps=20    any diffusers text-to-image pipeline folder (or hub id)

Folders whose ``model_index.json`` names ``ImagenPipeline`` load as an Imagen cascade; anything else
goes through ``diffusers.DiffusionPipeline.from_pretrained`` (Stable Diffusion, DeepFloyd IF, ...).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import PIL.Image
import torch

from .loading import hub_offline, is_hub_id, missing, resolve_folder
from .pipeline import MODEL_INDEX, ImagenPipeline
from .schedulers import scheduler_class

# Short setting names a user types -> the pipeline keyword they set.
SETTING_ALIASES = {
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "cfg": "guidance_scale",
    "scheduler": "scheduler",
    "noise_aug": "noise_aug_level",
    "thresholding": "thresholding",
    "percentile": "dynamic_thresholding_percentile",
}
IMAGEN_SETTINGS = {
    "num_inference_steps": int, "guidance_scale": float, "scheduler": str, "noise_aug_level": float,
    "thresholding": str, "dynamic_thresholding_percentile": float, "negative_prompt": str,
}
DIFFUSERS_SETTINGS = {"num_inference_steps": int, "guidance_scale": float, "scheduler": str, "negative_prompt": str}
KIND_WORDS = {int: "a whole number", float: "a number", str: "a name"}  # a setting's type, as its error says it

Progress = Callable[[int, int], None]  # (steps done, total steps) over the whole call


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model entry: what to load, and the sampling settings fixed for this entry."""

    name: str  # the entry as the user wrote it, used as its label everywhere
    source: str  # shipped name, folder or hub id
    settings: dict = field(default_factory=dict)  # raw "key": "value" strings, keys canonical

    @classmethod
    def parse(cls, entry: str) -> "ModelSpec":
        entry = entry.strip()
        source, _, tail = entry.partition("@")
        if not source:
            raise ValueError(f"model entry {entry!r} names no model; write e.g. 'default' or 'default@steps=10'")
        settings = {}
        for pair in filter(None, (p.strip() for p in tail.split(","))):
            key, eq, value = pair.partition("=")
            if not eq or not value:
                raise ValueError(f"setting {pair!r} in {entry!r} must look like key=value, e.g. steps=10")
            key = SETTING_ALIASES.get(key.strip(), key.strip())
            if key not in IMAGEN_SETTINGS:
                known = sorted(set(SETTING_ALIASES) | set(IMAGEN_SETTINGS))
                raise ValueError(f"unknown setting {key!r} in {entry!r}; known settings: {', '.join(known)}")
            settings[key] = value.strip()
        return cls(entry, source, settings)

    def typed_settings(self, allowed: dict[str, type]) -> dict:
        """Settings converted to their types; "a/b" gives one value per stage."""
        out = {}
        for key, value in self.settings.items():
            if key not in allowed:
                raise ValueError(f"{self.name}: setting {key!r} is not supported by this kind of model ({sorted(allowed)})")
            kind = allowed[key]
            try:
                parts = [kind(v) for v in value.split("/")]
            except ValueError:
                typed = next((alias for alias, name in SETTING_ALIASES.items() if name == key), key)  # in the user's words
                raise ValueError(f"{self.name}: {typed} must be {KIND_WORDS[kind]} (or one per stage with '/'), "
                                 f"got {value!r}")
            out[key] = parts[0] if len(parts) == 1 else parts
        return out


def parse_model_list(text: str) -> list[ModelSpec]:
    """``"default,default@steps=10,guidance=3,other"``: a ``key=value`` item continues the entry before it."""
    entries: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" in item and "@" not in item and entries and "@" in entries[-1]:
            entries[-1] += "," + item
        else:
            entries.append(item)
    if not entries:
        raise ValueError("no models given; e.g. --models default,default@steps=10")
    specs = [ModelSpec.parse(e) for e in entries]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model entries must be distinct, got {names}")
    return specs


def _seeded(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


class TextToImageModel:
    """A loaded model under fixed settings. ``generate`` returns one PIL image per (prompt, seed)."""

    kind = "model"

    def __init__(self, spec: ModelSpec, pipeline, settings: dict):
        self.spec, self.pipeline, self.settings = spec, pipeline, settings

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        """What a report needs to say exactly what ran."""
        return {"name": self.name, "kind": self.kind, "source": self.spec.source, "settings": self.settings}

    def _check(self, prompts: list[str], seeds: list[int]) -> None:
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts for {len(seeds)} seeds; pass one seed per prompt")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string, got {p!r}")

    def generate(self, prompts: list[str], seeds: list[int], progress: Progress | None = None, **settings) -> list[PIL.Image.Image]:
        raise NotImplementedError


class ImagenModel(TextToImageModel):
    """An ImagenPipeline cascade; per-call settings override the entry's, which override the saved defaults."""

    kind = "imagen"

    def describe(self) -> dict:
        stages = [f"{s.size}px {s.unet.num_parameters() / 1e6:.1f}M" for s in self.pipeline.stages]
        return {**super().describe(), "defaults": self.pipeline.defaults, "stages": stages,
                "text_encoder": str(self.pipeline.text_encoder.name_or_path)}

    def generate(self, prompts, seeds, progress=None, **settings):
        self._check(prompts, seeds)
        callback = (lambda event: progress(event.done, event.total)) if progress else None
        out = self.pipeline(list(prompts), seed=[int(s) for s in seeds], callback=callback, **{**self.settings, **settings})
        return out.images

    @property
    def sizes(self) -> list[int]:
        return [stage.size for stage in self.pipeline.stages]

    def super_resolve(self, prompts: list[str], low_res: list[PIL.Image.Image], seeds: list[int], **settings):
        """Run the cascade from `low_res` (the base stage's size) up: the SR stages alone, for PSNR/SSIM."""
        self._check(prompts, seeds)
        out = self.pipeline(list(prompts), seed=[int(s) for s in seeds], image=list(low_res), **{**self.settings, **settings})
        return out.images


class DiffusersModel(TextToImageModel):
    """Any diffusers text-to-image pipeline (Stable Diffusion, DeepFloyd IF stage I, ...)."""

    kind = "diffusers"

    def describe(self) -> dict:
        return {**super().describe(), "pipeline_class": type(self.pipeline).__name__}

    def generate(self, prompts, seeds, progress=None, **settings):
        self._check(prompts, seeds)
        settings = {**self.settings, **settings}
        pipeline = self.pipeline
        if "scheduler" in settings:  # a fresh pipeline sharing the modules: the loaded one stays as it was
            scheduler = scheduler_class(settings.pop("scheduler")).from_config(pipeline.scheduler.config)
            pipeline = type(pipeline)(**{**pipeline.components, "scheduler": scheduler})
            pipeline.set_progress_bar_config(disable=True)
        if "negative_prompt" in settings:
            settings["negative_prompt"] = [settings["negative_prompt"]] * len(prompts)
        kwargs = {}
        if progress is not None:
            total = settings.get("num_inference_steps", 50)

            def on_step_end(pipe, step, timestep, tensors):
                progress(step + 1, total)
                return tensors

            kwargs["callback_on_step_end"] = on_step_end
        out = pipeline(prompt=list(prompts), generator=_seeded(seeds), output_type="pil", **settings, **kwargs)
        return list(out.images)


def _model_index(source: str) -> tuple[dict, str]:
    """Read a model's model_index.json (shipped name, folder, or hub id) without loading weights."""
    if not is_hub_id(source):
        folder = resolve_folder(source, "Model")
        index_file = folder / MODEL_INDEX
        if not index_file.is_file():
            raise missing("Model (model_index.json)", folder)
        return json.loads(index_file.read_text()), str(folder)
    from huggingface_hub import hf_hub_download

    try:
        index_file = hf_hub_download(source, MODEL_INDEX, local_files_only=hub_offline())
    except Exception as err:  # the hub client raises many types; one sentence for the user
        raise missing("Model", source) from err
    return json.loads(Path(index_file).read_text()), source


class ModelRegistry:
    """Resolves entries to models; weights are loaded once per source and shared by every entry and thread."""

    def __init__(self, device: str | torch.device | None = None, compile: bool = False):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.compile = compile  # torch.compile every Imagen cascade on load (ImagenPipeline.compile, with warm-up)
        self._pipelines: dict[str, tuple[type[TextToImageModel], object]] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}

    def add(self, source: str, pipeline) -> None:
        """Register an already-built pipeline under a name (tests, or a model built in code)."""
        kind = ImagenModel if isinstance(pipeline, ImagenPipeline) else DiffusersModel
        with self._lock:
            self._pipelines[source] = (kind, pipeline)

    def _load(self, source: str):
        with self._lock:
            if source not in self._pipelines:
                started = time.perf_counter()
                index, where = _model_index(source)
                if index.get("_class_name") == ImagenPipeline.__name__:
                    pipe = ImagenPipeline.from_pretrained(where, device=self.device)
                    self._pipelines[source] = (ImagenModel, pipe.compile() if self.compile else pipe)
                else:
                    from diffusers import DiffusionPipeline

                    pipe = DiffusionPipeline.from_pretrained(where, local_files_only=hub_offline()).to(self.device)
                    pipe.set_progress_bar_config(disable=True)
                    self._pipelines[source] = (DiffusersModel, pipe)
                self.load_seconds[source] = time.perf_counter() - started
            return self._pipelines[source]

    def get(self, entry: str | ModelSpec) -> TextToImageModel:
        spec = entry if isinstance(entry, ModelSpec) else ModelSpec.parse(entry)
        kind, pipeline = self._load(spec.source)
        allowed = IMAGEN_SETTINGS if kind is ImagenModel else DIFFUSERS_SETTINGS
        return kind(spec, pipeline, spec.typed_settings(allowed))


def slug(name: str) -> str:
    """A file-system-safe folder name for a model entry (``default@steps=10`` -> ``default_steps_10``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "model"
