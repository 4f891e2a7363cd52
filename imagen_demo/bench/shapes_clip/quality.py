"""How far shapes-CLIP can be trusted, measured against the shapes world's exact truth.

- Retrieval on true renders of a suite's held-out prompts: image -> text R@1, and the share of (image, own prompt)
  pairs that score above (image, false prompt) pairs. "True" is decided by the verifier, so a paraphrase or a
  less specific prompt that also describes the picture is not counted as a miss.
- On a benchmark run's generated images: how the CLIP score separates images the verifier passes from those it
  fails (means, AUROC) and how it ranks with the fraction of checks passed (Spearman).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from imagen_demo.shapes import Spec, check_objects, detect_objects

from ..metrics.shapes_clip import ShapesClip
from ..references import reference_renders
from ..run import score


def retrieval(clip: ShapesClip, items: list, seed: int = 0, size: int = 256) -> dict:
    """R@1 and matched-above-mismatched on true renders of suite `items` that carry specs, overall and R@1 per
    category. Prompt i's picture is drawn with seed `seed + i` at `size` px (then resized as a generated one is), so
    paraphrases of one spec (shapes-test's 20 single-object prompts share 3 specs) are different pictures."""
    items = [item for item in items if item.spec]
    specs = [Spec.from_dict(item.spec) for item in items]
    images = [reference_renders(item.spec, seed + i, size) for i, item in enumerate(items)]
    similarity = clip.similarity(images, [item.prompt for item in items])
    objects = [detect_objects(image) for image in images]
    truth = torch.tensor([[spec == specs[i] or check_objects(spec, objects[i]).passed for spec in specs]
                          for i in range(len(items))])
    hits = truth[torch.arange(len(items)), similarity.argmax(1)].float()
    above = similarity.diagonal()[:, None] > similarity
    per_category: dict[str, list[float]] = {}
    for item, hit in zip(items, hits.tolist()):
        per_category.setdefault(item.category, []).append(hit)
    return {"n": len(items), "recall_at_1": float(hits.mean()), "matched_above_mismatched": float(above[~truth].float().mean()),
            "mismatched_pairs": int((~truth).sum()),
            "recall_at_1_by_category": {c: sum(v) / len(v) for c, v in per_category.items()}}


def verifier_agreement(out: Path, clip: str) -> dict:
    """CLIP score against the verifier on a benchmark run's images (scored with `clip`, cached in the run)."""
    # On use: scipy.stats and torchmetrics take seconds to import, and only `quality --run` needs them.
    from scipy.stats import spearmanr
    from torchmetrics.functional.classification import binary_auroc

    scores, _ = score(out, clip=clip, features="none")
    table = scores.results.pivot_table(index=["model", "item", "seed"], columns="metric", values="value")
    if not {"exact", "clip_score"} <= set(table.columns):
        raise ValueError(f"{out}: no images with both a verifier result and a CLIP score ({'; '.join(scores.notes)})")
    table = table.dropna(subset=["exact", "clip_score"])
    passing = table["exact"] == 1
    both = 0 < passing.sum() < len(table)
    varied = table["clip_score"].nunique() > 1 and table["checks"].nunique() > 1  # else no rank correlation
    return {"n": len(table), "n_passing": int(passing.sum()),
            "mean_passing": float(table.loc[passing, "clip_score"].mean()) if passing.any() else math.nan,
            "mean_failing": float(table.loc[~passing, "clip_score"].mean()) if (~passing).any() else math.nan,
            "auroc": float(binary_auroc(torch.tensor(table["clip_score"].to_numpy()),
                                        torch.tensor(passing.to_numpy()).long())) if both else math.nan,
            "spearman_checks": float(spearmanr(table["clip_score"], table["checks"]).statistic) if varied else math.nan}
