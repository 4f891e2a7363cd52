"""Train/test split by held-out attribute combinations (compositional generalisation).

Every colour, shape and size is seen in training, but the combinations in HELD_OUT
never are -- neither in a caption nor in a picture (objects of "any colour" avoid
them too). The test split contains only specs that use at least one of them, so a
model scores well there only if it composes attributes it learned separately.
"""

from __future__ import annotations

import numpy as np

from .captions import caption
from .spec import Spec, sample_category_spec
from .vocab import CATEGORIES

# One held-out (colour, shape) pair per shape, each with a different colour.
HELD_OUT_COLOUR_SHAPE: tuple[tuple[str, str], ...] = (
    ("blue", "triangle"), ("red", "star"), ("green", "cross"),
    ("yellow", "diamond"), ("purple", "circle"), ("orange", "square"),
)
# (size, shape) pairs: what makes a colourless single_object prompt novel.
HELD_OUT_SIZE_SHAPE: tuple[tuple[str, str], ...] = (("small", "diamond"), ("large", "star"), ("large", "circle"))
HELD_OUT: dict[str, tuple[tuple[str, str], ...]] = {
    "colour_shape": HELD_OUT_COLOUR_SHAPE,
    "size_shape": HELD_OUT_SIZE_SHAPE,
}
SPLITS = ("train", "test")


def is_held_out(colour: str | None, shape: str, size: str | None = None) -> bool:
    return (colour, shape) in HELD_OUT_COLOUR_SHAPE or (size, shape) in HELD_OUT_SIZE_SHAPE


def held_out_combos(spec: Spec) -> list[tuple[str, str]]:
    """The held-out pairs a spec uses (empty for every training spec)."""
    found = []
    for g in spec.groups:
        found += [(g.colour, g.shape)] if (g.colour, g.shape) in HELD_OUT_COLOUR_SHAPE else []
        found += [(g.size, g.shape)] if (g.size, g.shape) in HELD_OUT_SIZE_SHAPE else []
    return found


def sample_spec(rng: np.random.Generator, category: str | None = None, split: str = "train") -> Spec:
    """A random spec of `category` (uniform over CATEGORIES if None) from one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    category = category or CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    while True:  # rejection: about 1 in 8 (at worst 1 in 20) draws uses a held-out pair
        spec = sample_category_spec(rng, category)
        if bool(held_out_combos(spec)) == (split == "test"):
            return spec


def test_suite(n_per_category: int, seed: int = 0) -> list[dict]:
    """The "shapes-test" benchmark: held-out prompts for every category, deterministic in `seed`.

    Rows are {"prompt", "category", "spec"}; prompts may repeat when a category has
    fewer distinct held-out specs than `n_per_category` (single_object has three).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for category in CATEGORIES:
        for _ in range(n_per_category):
            spec = sample_spec(rng, category, split="test")
            rows.append({"prompt": caption(spec, rng, "en"), "category": category, "spec": spec.to_dict()})
    return rows


test_suite.__test__ = False  # not a pytest test despite the name


def recaption(rows: list[dict], language: str, seed: int = 0, tries: int = 1000) -> list[dict]:
    """The same rows (spec, category, order) captioned afresh in `language`, deterministic in `seed`.

    Prompts stay distinct, as a suite needs (shapes-test repeats a spec under several English paraphrases).
    """
    rng, seen, out = np.random.default_rng(seed), set(), []
    for row in rows:
        spec = Spec.from_dict(row["spec"])
        prompt = next((p for p in (caption(spec, rng, language) for _ in range(tries)) if p not in seen), None)
        if prompt is None:
            raise ValueError(f"no new {language} caption for {row['prompt']!r} in {tries} tries")
        seen.add(prompt)
        out.append({**row, "prompt": prompt})
    return out
