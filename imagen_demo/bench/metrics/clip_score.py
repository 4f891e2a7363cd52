"""CLIP score per image, ``100 * max(cos(E_image, E_prompt), 0)`` (Hessel et al. 2021 without their 2.5 weight;
torchmetrics' convention, clamped per image rather than after averaging), from a Hugging Face CLIP, an open_clip
model, or shapes-CLIP (`shapes_clip`), the small CLIP the project trains on the shapes world for offline use.
"""

from __future__ import annotations

import math
from pathlib import Path

import huggingface_hub
import numpy as np
import PIL.Image
import torch
from torch import nn

from imagen_demo.core.loading import hub_offline

from . import MetricUnavailable
from .shapes_clip import SHIPPED, WEIGHTS_FILE, ShapesClip, fingerprint


class _ClipFeatures(nn.Module):
    """transformers 5 returns model outputs from `get_*_features`; torchmetrics 1.9 expects the projected tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        out = self.model.get_image_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        out = self.model.get_text_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)


HUB_CLIP = "openai/clip-vit-base-patch32"  # what `auto` uses wherever the hub or its cache has it
SHAPES_CLIP = "shapes-clip"  # the shipped shapes-CLIP; `shapes-clip:FOLDER` names another


def is_shapes_clip(name: str) -> bool:
    return name == SHAPES_CLIP or name.startswith(SHAPES_CLIP + ":")


def clip_label(name: str) -> str:
    """How reports and the demo name a CLIP: "CLIP score (shapes-CLIP)" is never to be read as OpenAI's."""
    return "shapes-CLIP" if is_shapes_clip(name) else name


def shapes_clip_folder(name: str) -> Path:
    """The folder a shapes-CLIP name points at, once its weights are known to be there."""
    folder = Path(name.partition(":")[2] or SHIPPED)
    if not (folder / WEIGHTS_FILE).is_file():
        raise MetricUnavailable(f"CLIP score skipped: no shapes-CLIP weights in {folder}; train them with "
                                "python -m imagen_demo.bench.shapes_clip train --config recipes/shapes-clip.toml")
    return folder


def clip_cache_key(name: str) -> str:
    """The score cache's name for a CLIP: shapes-CLIP's carries its weights' hash, so retrained weights rescore."""
    if not is_shapes_clip(name):
        return f"clip:{name}"
    return f"clip:{SHAPES_CLIP}@{fingerprint(shapes_clip_folder(name))}"


def resolve_clip(name: str | None, shapes: bool) -> str | None:
    """`auto`: the hub CLIP when the hub is allowed or has it cached, else shapes-CLIP when the prompts are
    shapes-world prompts (`shapes`), else None. Other names are returned as they are."""
    if name != "auto":
        return name
    if not hub_offline() or isinstance(huggingface_hub.try_to_load_from_cache(HUB_CLIP, "config.json"), str):
        return HUB_CLIP
    return SHAPES_CLIP if shapes else None


class ClipScorer:
    """Per-image CLIP score. ``name`` is an HF CLIP id or folder, ``open_clip:ARCH:PRETRAINED``, or ``shapes-clip``
    (``shapes-clip:FOLDER``). shapes-CLIP gives NaN for a prompt with words it was not trained on."""

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.name, self.device, self.label = name, torch.device(device), clip_label(name)
        try:
            if name.startswith("open_clip:"):
                self._score = self._open_clip(*name.split(":", 2)[1:])
            elif is_shapes_clip(name):
                self._score = self._shapes_clip(shapes_clip_folder(name))
            else:
                self._score = self._hf_clip(name)
        except MetricUnavailable:
            raise
        except Exception as err:  # hub / file errors come in many types; one sentence for the report
            raise MetricUnavailable(
                f"CLIP score skipped: CLIP model '{name}' is not available on this machine ({type(err).__name__}). "
                "Pass --clip with a local CLIP folder, a cached hub id, or open_clip:ARCH:WEIGHTS_FILE."
            ) from err

    def _hf_clip(self, name: str):
        # Imported on use, as are open_clip's below: each takes seconds, and a process scores with one back-end at most.
        from torchmetrics.functional.multimodal import clip_score
        from transformers import CLIPModel, CLIPProcessor

        model = _ClipFeatures(CLIPModel.from_pretrained(name, local_files_only=hub_offline()).eval().to(self.device))
        processor = CLIPProcessor.from_pretrained(name, local_files_only=hub_offline())

        def score(images, prompts):
            pixels = [torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).to(self.device) for im in images]
            with torch.no_grad():
                return [float(clip_score(image, prompt, model_name_or_path=lambda: (model, processor)))
                        for image, prompt in zip(pixels, prompts)]

        return score

    def _open_clip(self, arch: str, pretrained: str | None = None):
        import open_clip  # on use: see _hf_clip

        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None, device=self.device)
        tokenizer = open_clip.get_tokenizer(arch)
        model.eval()

        def score(images, prompts):
            with torch.no_grad():
                image = model.encode_image(torch.stack([preprocess(im.convert("RGB")) for im in images]).to(self.device))
                text = model.encode_text(tokenizer(list(prompts)).to(self.device))
                cos = torch.nn.functional.cosine_similarity(image, text, dim=-1)
            return (100 * cos.clamp(min=0)).tolist()

        return score

    def _shapes_clip(self, folder: Path):
        model = ShapesClip.load(folder).to(self.device)

        def score(images, prompts):
            values = (100 * model.cosine(images, list(prompts)).clamp(min=0)).tolist()
            return [value if model.reads(prompt) else math.nan for value, prompt in zip(values, prompts)]

        return score

    def __call__(self, images: list[PIL.Image.Image], prompts: list[str]) -> list[float]:
        return self._score(images, prompts)
