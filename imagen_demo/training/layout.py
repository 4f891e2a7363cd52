"""Does the prompt decide the layout? The text's effect on the one-step prediction at the noisiest timesteps.

Sampling decides where objects go in its first few steps, at noise levels where the picture is nearly all noise.
If the prompt moves the model's one-step clean-image prediction there only in colour, not in place, guidance
cannot help (it only amplifies what the text changes). So true renders of position, counting and colour-binding
prompts are noised to timestep t, and the base U-Net predicts the clean image with the prompt and with the empty
prompt (the same noise); for each t this reports:
- shift: how far the prompt moves the named object's colour toward the named side (absolute positions), or the
  two objects' colours apart along the named axis (relations); true renders sit about 0.27 toward it;
- the verifier's position, relation, count and binding check rates on both predictions.
It moves within a few thousand images, long before sampled accuracy does, but can miss a change that only shows
when sampling: read it next to the sampled accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor

from ..core.sampling import Stage, predicted_original
from ..core.text_encoder import TextEncoder
from ..shapes import COLOURS, Spec, sample_example, verify
from ..shapes.scene import relation_offsets

LAYOUT_TIMESTEPS = (999, 970, 940, 900, 850)
LAYOUT_CATEGORIES = ("position", "counting", "color_attr")
LAYOUT_CHECKS = ("position", "relation", "count", "binding")
OFF_LINE_SCALE = 0.25  # in [-1, 1] units (about 32 of 255): how far off the background-to-colour line still counts


def colour_centroid(image: torch.Tensor, rgb: tuple[int, int, int]) -> tuple[float, float]:
    """(x, y) in [0, 1] of the pixels that lie between the image's median colour and `rgb`, weighted by how far along.

    A soft locator: it reads the blurry predictions of the noisiest steps, where nothing is sharp enough to detect
    (a blur mixes an object's colour with the background, so its pixels stay on that line; another object's colour
    lies off it). `image` is (3, H, W) in [-1, 1]; an image with no such pixel gives the centre.
    """
    background = image.flatten(1).median(dim=1).values[:, None, None]
    direction = torch.tensor(rgb, dtype=image.dtype)[:, None, None] / 127.5 - 1 - background
    offset = image - background
    along = (offset * direction).sum(0) / direction.pow(2).sum().clamp(min=1e-6)
    off_line = (offset - along * direction).pow(2).sum(0)
    weight = along.clamp(0, 1) * torch.exp(-off_line / (2 * OFF_LINE_SCALE**2))
    h, w = weight.shape
    ys, xs = (torch.arange(h, dtype=image.dtype) + 0.5) / h, (torch.arange(w, dtype=image.dtype) + 0.5) / w
    total = weight.sum()
    if total < 1e-6:  # no pixel leans toward the colour: no evidence of any side
        return 0.5, 0.5
    return float((weight.sum(0) * xs).sum() / total), float((weight.sum(1) * ys).sum() / total)


def toward_layout(spec: Spec, image: torch.Tensor) -> float | None:
    """How far `image` shows the layout `spec` names (positive: the named way); None for a spec that names no side
    (no position, "center", or a relation between two objects of one colour, which colour cannot tell apart)."""
    if spec.relation:
        a, b = spec.groups
        if a.colour == b.colour:
            return None
        along, _ = relation_offsets(spec.relation, colour_centroid(image, COLOURS[a.colour]),
                                    colour_centroid(image, COLOURS[b.colour]))
        return along
    group = spec.groups[0]
    if group.position in (None, "center"):
        return None
    x, y = colour_centroid(image, COLOURS[group.colour])
    return {"left": 0.5 - x, "right": x - 0.5, "top": 0.5 - y, "bottom": y - 0.5}[group.position]


def _examples(per_category: int, seed: int, split: str, size: int) -> list:
    rng = np.random.default_rng(seed)
    return [sample_example(rng, sizes=(size,), split=split, category=c, plain_background=0.8)
            for c in LAYOUT_CATEGORIES for _ in range(per_category)]


def _mean(values: list) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")  # nan: no example of that kind


@torch.no_grad()
def layout_diagnostic(stage: Stage, text_encoder: TextEncoder, timesteps=LAYOUT_TIMESTEPS, per_category: int = 32,
                      seed: int = 5, split: str = "test") -> list[dict]:
    """One row per timestep (and a first row, t = "render", for the true renders): shift toward the named layout
    from the prompt (absolute positions and relations apart), and each check's rate with and without the prompt."""
    examples = _examples(per_category, seed, split, stage.size)
    specs = [e.spec for e in examples]
    x0 = torch.cat([VaeImageProcessor().preprocess(e.images[stage.size]) for e in examples])
    text = text_encoder.encode([e.caption for e in examples] + [""] * len(examples))
    unet, processor = stage.unet.eval(), VaeImageProcessor(do_resize=False)
    relation = [s.relation is not None for s in specs]

    def shifts(conditional: torch.Tensor, baseline: torch.Tensor | None) -> dict:
        moved = [None if (v := toward_layout(s, c)) is None else v - (0 if baseline is None else toward_layout(s, b))
                 for s, c, b in zip(specs, conditional, baseline if baseline is not None else conditional)]
        return {"shift_absolute": _mean([m for m, r in zip(moved, relation) if not r]),
                "shift_relation": _mean([m for m, r in zip(moved, relation) if r])}

    def check_rates(images: torch.Tensor, suffix: str = "") -> dict:
        results = [verify(s, im) for s, im in zip(specs, processor.postprocess(images, output_type="pil"))]
        # binding is judged only where both objects were drawn: with none, no attribute can be swapped
        judged = [r for r in results if all(c.passed for c in r.checks if c.kind == "object")]
        return {f"{kind}{suffix}": _mean([c.passed for r in (judged if kind == "binding" else results)
                                          for c in r.checks if c.kind == kind]) for kind in LAYOUT_CHECKS}

    unconditional_columns = {f"{kind}_no_prompt": float("nan") for kind in LAYOUT_CHECKS}
    rows = [{"t": "render", **shifts(x0, None), **check_rates(x0), **unconditional_columns}]
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(t)))
        a = stage.scheduler.alphas_cumprod[t]
        noisy = torch.cat([a.sqrt() * x0 + (1 - a).sqrt() * noise] * 2)
        output = unet(noisy, torch.full((len(noisy),), t), text.embeddings, text.mask)
        predicted = predicted_original(stage.scheduler, 0, t, noisy, output, unet.config.prediction_type).clamp(-1, 1)
        conditional, unconditional = predicted.chunk(2)
        rows.append({"t": t, **shifts(conditional, unconditional), **check_rates(conditional),
                     **check_rates(unconditional, "_no_prompt")})
    return rows
