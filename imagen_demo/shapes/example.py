"""One training example of the shapes world: spec -> scene -> caption + renders at several sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .captions import LANGUAGES, caption
from .render import render
from .scene import Scene, sample_scene
from .spec import Spec
from .splits import sample_spec

# "mixed" draws the caption language per example with these odds.
MIXED_LANGUAGE_ODDS = {"en": 0.5, "zh": 0.5}


@dataclass(frozen=True)
class Example:
    spec: Spec
    scene: Scene
    caption: str
    language: str
    images: dict[int, Image.Image]  # size -> render of the same scene


def sample_example(
    rng: np.random.Generator,
    sizes: tuple[int, ...] = (64,),
    split: str = "train",
    language: str = "en",
    category: str | None = None,
    plain_background: float = 0.5,
    spec: Spec | None = None,
) -> Example:
    """Deterministic in `rng`'s state: the same seed gives the same caption and pixels. With `spec`, a scene and
    caption of that spec instead of a random one of `split` and `category`."""
    if language == "mixed":
        language = str(rng.choice(list(MIXED_LANGUAGE_ODDS), p=list(MIXED_LANGUAGE_ODDS.values())))
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {(*LANGUAGES, 'mixed')}, got {language!r}")
    spec = spec or sample_spec(rng, category, split)
    scene = sample_scene(spec, rng, plain_background=plain_background)
    text = caption(spec, rng, language)
    return Example(spec, scene, text, language, {size: render(scene, size) for size in sizes})
