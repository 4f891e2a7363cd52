"""One interface for every model the benchmark and the demo compare: ``generate(prompts, seeds, **settings)``.

A model entry is written ``NAME[@key=value,...]``: NAME is a shipped model ("default"), a pipeline
folder or a hub id; the settings after ``@`` fix sampling options for that entry, so the same weights
under different settings are separate entries that share one loaded pipeline::

    default                         the shipped shapes model at its saved defaults
    default@steps=10                every stage at 10 steps
    default@steps=25/10,guidance=7  per-stage values are separated by "/"
    ./runs/my-sd-folder@steps=20    any diffusers text-to-image pipeline folder (or hub id)

Every model is a diffusers pipeline, loaded, called and given its sampler the same way: a folder this package saved
loads as `ImagenPipeline` (the installed class: no code from the folder runs), any other through diffusers'
`DiffusionPipeline` (Stable Diffusion, DeepFloyd IF, ...). A setting is a keyword of the pipeline's call, refused
where the pipeline has no such keyword; `scheduler` swaps its scheduler components (`swap_schedulers`). Every prompt
first goes through the rewrite for text encoders that cannot read its language (`prompting.english_rewrite`).
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import PIL.Image
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import hf_hub_download

from .core.loading import hub_offline, is_hub_id, missing, resolve_folder
from .core.pipeline import ImagenPipeline
from .core.schedulers import swap_schedulers
from .prompting import english_rewrite

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
SETTING_TYPES = {
    "num_inference_steps": int, "guidance_scale": float, "scheduler": str, "noise_aug_level": float,
    "thresholding": str, "dynamic_thresholding_percentile": float, "negative_prompt": str,
}
SAMPLER = "scheduler"  # the one setting that is no keyword of the call: it swaps the pipeline's schedulers
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
            if key not in SETTING_TYPES:
                known = sorted(set(SETTING_ALIASES) | set(SETTING_TYPES))
                raise ValueError(f"unknown setting {key!r} in {entry!r}; known settings: {', '.join(known)}")
            settings[key] = value.strip()
        return cls(entry, source, settings)

    def typed_values(self) -> dict:
        """Settings converted to their types ("a/b" gives one value per stage), without loading any pipeline."""
        out = {}
        for key, value in self.settings.items():
            kind = SETTING_TYPES[key]
            try:
                parts = [kind(v) for v in value.split("/")]
            except ValueError:
                typed = next((alias for alias, name in SETTING_ALIASES.items() if name == key), key)  # in the user's words
                raise ValueError(f"{self.name}: {typed} must be {KIND_WORDS[kind]} (or one per stage with '/'), "
                                 f"got {value!r}")
            out[key] = parts[0] if len(parts) == 1 else parts
        return out

    def typed_settings(self, pipeline: DiffusionPipeline) -> dict:
        """`typed_values`; a setting `pipeline` cannot take is refused."""
        accepted = inspect.signature(pipeline.__call__).parameters
        for key in self.settings:
            if key != SAMPLER and key not in accepted:
                usable = sorted(k for k in SETTING_TYPES if k == SAMPLER or k in accepted)
                raise ValueError(f"{self.name}: setting {key!r} is not supported by {type(pipeline).__name__} ({usable})")
        return self.typed_values()


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


def _counting(progress: Progress | None) -> dict:
    """Call keywords that report (steps done, steps in the call) to `progress` after every step, for any pipeline."""
    if progress is None:
        return {}
    done = 0

    def on_step_end(pipe, step, timestep, tensors):
        nonlocal done
        done += 1
        progress(done, pipe.num_timesteps)
        return {}

    return {"callback_on_step_end": on_step_end, "callback_on_step_end_tensor_inputs": []}


class TextToImageModel:
    """A loaded pipeline under an entry's settings; ``generate`` returns one PIL image per (prompt, seed).

    Per-call settings override the entry's, which override the pipeline's own defaults. `pipeline` is the loaded one,
    or a copy sharing its modules when the entry names another sampler."""

    def __init__(self, spec: ModelSpec, pipeline: DiffusionPipeline):
        self.spec, self.settings = spec, spec.typed_settings(pipeline)
        self.pipeline = pipeline
        if SAMPLER in self.settings:
            self.pipeline = swap_schedulers(pipeline, self.settings[SAMPLER])
            self.pipeline.set_progress_bar_config(disable=True)
        self.call_settings = {key: value for key, value in self.settings.items() if key != SAMPLER}

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        """What a report needs to say exactly what ran: the pipeline class, its components and its saved config."""
        components = self.pipeline.components
        parts = {name: type(c).__name__ + (f" ({sum(p.numel() for p in c.parameters()) / 1e6:.1f}M)"
                                           if isinstance(c, torch.nn.Module) else "")
                 for name, c in components.items() if c is not None}
        config = {key: value for key, value in self.pipeline.config.items()
                  if not key.startswith("_") and key not in components}
        return {"name": self.name, "source": self.spec.source, "settings": self.settings,
                "pipeline_class": type(self.pipeline).__name__, "components": parts, "config": config}

    @property
    def sizes(self) -> list[int]:
        """The image side of every stage of a cascade; empty for a pipeline that is not one."""
        return [stage.size for stage in self.pipeline.stages] if isinstance(self.pipeline, ImagenPipeline) else []

    def _prompts(self, prompts: list[str], seeds: list[int]) -> list[str]:
        """The prompts checked, each as the text encoder gets it (rewritten when it cannot read the language)."""
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts for {len(seeds)} seeds; pass one seed per prompt")
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string, got {p!r}")
        return [english_rewrite(self.pipeline, p) or p for p in prompts]

    def _settings(self, count: int, overrides: dict) -> dict:
        settings = {**self.call_settings, **overrides}
        if "negative_prompt" in settings:
            settings["negative_prompt"] = [settings["negative_prompt"]] * count
        return settings

    def generate(self, prompts: list[str], seeds: list[int], progress: Progress | None = None,
                 **settings) -> list[PIL.Image.Image]:
        texts = self._prompts(prompts, seeds)
        out = self.pipeline(prompt=texts, generator=_seeded(seeds), output_type="pil",
                            **self._settings(len(texts), settings), **_counting(progress))
        return list(out.images)

    def super_resolve(self, prompts: list[str], low_res: list[PIL.Image.Image], seeds: list[int], **settings):
        """Run a cascade from `low_res` (its base stage's size) up: the SR stages alone, for PSNR/SSIM."""
        if len(self.sizes) < 2:
            raise ValueError(f"{self.name} is no cascade with a super-resolution stage")
        texts = self._prompts(prompts, seeds)
        out = self.pipeline(prompt=texts, generator=_seeded(seeds), image=list(low_res), output_type="pil",
                            **self._settings(len(texts), settings))
        return list(out.images)


def _model_index(source: str) -> tuple[dict, str]:
    """Read a model's model_index.json (shipped name, folder, or hub id) without loading weights."""
    if not is_hub_id(source):
        folder = resolve_folder(source, "Model")
        index_file = folder / DiffusionPipeline.config_name
        if not index_file.is_file():
            raise missing(f"Model ({DiffusionPipeline.config_name})", folder)
        return json.loads(index_file.read_text()), str(folder)
    try:
        index_file = hf_hub_download(source, DiffusionPipeline.config_name, local_files_only=hub_offline())
    except Exception as err:  # the hub client raises many types; one sentence for the user
        raise missing("Model", source) from err
    return json.loads(Path(index_file).read_text()), source


def pipeline_class(index: dict) -> type[DiffusionPipeline]:
    """The class whose `from_pretrained` loads a folder: this package's for the folders it saved, else diffusers'
    own resolution of the index's class name (which runs no code from the folder either)."""
    return ImagenPipeline if index.get("_class_name") == ImagenPipeline.__name__ else DiffusionPipeline


class ModelRegistry:
    """Resolves entries to models; weights are loaded once per source and shared by every entry and thread."""

    def __init__(self, device: str | torch.device | None = None, compile: bool = False):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.compile = compile  # torch.compile every Imagen cascade on load (ImagenPipeline.compile, with warm-up)
        self._pipelines: dict[str, DiffusionPipeline] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}

    def add(self, source: str, pipeline: DiffusionPipeline) -> None:
        """Register an already-built pipeline under a name (tests, or a model built in code)."""
        with self._lock:
            self._pipelines[source] = pipeline

    def _load(self, source: str) -> DiffusionPipeline:
        with self._lock:
            if source not in self._pipelines:
                started = time.perf_counter()
                index, where = _model_index(source)
                pipe = pipeline_class(index).from_pretrained(where, local_files_only=hub_offline()).to(self.device)
                pipe.set_progress_bar_config(disable=True)
                if self.compile and isinstance(pipe, ImagenPipeline):
                    pipe.compile()
                self._pipelines[source] = pipe
                self.load_seconds[source] = time.perf_counter() - started
            return self._pipelines[source]

    def get(self, entry: str | ModelSpec) -> TextToImageModel:
        spec = entry if isinstance(entry, ModelSpec) else ModelSpec.parse(entry)
        return TextToImageModel(spec, self._load(spec.source))


def slug(name: str) -> str:
    """A file-system-safe folder name for a model entry (``default@steps=10`` -> ``default_steps_10``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "model"
