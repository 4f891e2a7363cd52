"""The CLIP score under every picture of the Generate and Compare tabs, from the benchmark's own scorer.

Offline the CLIP is shapes-CLIP, which reads only the shapes world's words: a prompt with others gets a dash
rather than a number that would mean nothing.
"""

from __future__ import annotations

import math
import warnings

import PIL.Image

from ..bench.metrics import MetricUnavailable
from ..bench.metrics.clip_score import ClipScorer, resolve_clip


def load_clip(name: str | None, device="cpu") -> ClipScorer | None:
    """The demo's CLIP (`auto`: a cached hub CLIP, else shapes-CLIP); None, with a warning, when it is missing."""
    name = resolve_clip(name, shapes=True)
    if not name or name == "none":
        return None
    try:
        return ClipScorer(name, device=device)
    except MetricUnavailable as err:
        warnings.warn(f"the demo shows no CLIP score: {err}", stacklevel=2)
        return None


def shown_scores(clip: ClipScorer | None, images: list[PIL.Image.Image], prompt: str) -> list[str | None]:
    """Each image's CLIP score as shown: '31.2', or a dash where the CLIP cannot read the prompt; None without one."""
    if clip is None:
        return [None] * len(images)
    return ["– (words it was not trained on)" if math.isnan(v) else f"{v:.1f}"
            for v in clip(images, [prompt] * len(images))]


def with_score(clip: ClipScorer | None, caption: str, score: str | None) -> str:
    """'caption · CLIP score (shapes-CLIP): 31.2' (the CLIP is always named), or the caption alone."""
    return caption if score is None else f"{caption} · CLIP score ({clip.label}): {score}"
