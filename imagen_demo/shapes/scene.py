"""A concrete layout that satisfies a spec: where each object is, how big, which exact RGB.

Scenes are sampled with clear margins (no overlaps, nothing touching the border,
positions and relations hold by a wide gap) so the verifier's tolerances never decide
whether a true render passes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .spec import Spec
from .splits import is_held_out
from .vocab import COLOURS, SIZE_RANGES

EDGE = 0.03  # free border around every object, fraction of the image side
GAP = 0.05  # minimum free space between two objects' boxes
MAX_ROTATION = 5.0  # degrees; keeps a square a square and a diamond a diamond
COLOUR_JITTER = 10  # per-channel RGB jitter around the palette colour
# Generator-side regions for absolute positions: (x range, y range). The verifier
# accepts a wider region, so true renders pass with room to spare.
POSITION_REGIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "left": ((0.0, 0.30), (0.38, 0.62)),
    "right": ((0.70, 1.0), (0.38, 0.62)),
    "top": ((0.38, 0.62), (0.0, 0.30)),
    "bottom": ((0.38, 0.62), (0.70, 1.0)),
    "center": ((0.45, 0.55), (0.45, 0.55)),
}
RELATION_MIN_OFFSET = 0.25  # centre distance along the relation's axis
RELATION_MAX_SKEW = 0.4  # |off-axis offset| <= this * on-axis offset


@dataclass(frozen=True)
class Background:
    """A light or dark neutral: plain, or a gradient from colour_a to colour_b plus faint noise."""

    kind: str  # "plain" | "varied"
    colour_a: tuple[int, int, int]
    colour_b: tuple[int, int, int]
    angle: float  # gradient direction, degrees
    noise_seed: int
    noise_amp: float  # std of the added grey noise, in 0..255 units


@dataclass(frozen=True)
class ObjectInstance:
    """One drawn object; x, y (bbox centre) and size (bbox side) are fractions of the image."""

    group: int
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    x: float
    y: float
    size: float
    rotation: float


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectInstance, ...]
    background: Background

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects], "background": asdict(self.background)}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        objects = tuple(ObjectInstance(**{**o, "rgb": tuple(o["rgb"])}) for o in d["objects"])
        bg = d["background"]
        return cls(objects, Background(**{**bg, "colour_a": tuple(bg["colour_a"]), "colour_b": tuple(bg["colour_b"])}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.from_dict(json.loads(text))


def sample_scene(spec: Spec, rng: np.random.Generator, max_tries: int = 2000, plain_background: float = 0.5) -> Scene:
    """Lay out the spec's objects by rejection sampling; deterministic given `rng`'s state.

    `plain_background` is the chance of a plain background (else a gradient with noise).
    """
    drafts = [(i, g) for i, g in enumerate(spec.groups) for _ in range(g.count)]
    looks = [_sample_look(g.shape, g.colour, g.size, rng) for _, g in drafts]
    half_sides = [0.55 * size for _, _, size, _ in looks]  # 0.55 > (cos 5° + sin 5°) / 2
    regions = [POSITION_REGIONS.get(g.position, ((0.0, 1.0), (0.0, 1.0))) for _, g in drafts]
    for _ in range(max_tries):
        centres = _place(half_sides, regions, rng)
        if centres is not None and (spec.relation is None or _relation_holds(spec.relation, *centres)):
            break
    else:
        raise RuntimeError(f"could not lay out {spec}")
    objects = tuple(
        ObjectInstance(i, g.shape, name, rgb, float(x), float(y), size, rotation)
        for (i, g), (name, rgb, size, rotation), (x, y) in zip(drafts, looks, centres)
    )
    return Scene(objects, _sample_background(rng, plain_background))


def _sample_look(shape: str, colour: str | None, size: str | None, rng: np.random.Generator):
    """Colour name, jittered RGB, side and rotation; "any colour" never picks a held-out pair."""
    if colour is None:
        allowed = [c for c in COLOURS if not is_held_out(c, shape)]
        colour = allowed[int(rng.integers(len(allowed)))]
    rgb = np.clip(np.array(COLOURS[colour]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
    side = float(rng.uniform(*SIZE_RANGES[size]))
    rotation = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    return colour, tuple(int(v) for v in rgb), side, rotation


def _place(half_sides, regions, rng, tries_per_object: int = 50) -> list[tuple[float, float]] | None:
    """Sequentially drop boxes inside their regions without overlap; None if one doesn't fit."""
    centres: list[tuple[float, float]] = []
    for half, ((x_lo, x_hi), (y_lo, y_hi)) in zip(half_sides, regions):
        lo, hi = EDGE + half, 1 - EDGE - half
        x_lo, x_hi, y_lo, y_hi = max(x_lo, lo), min(x_hi, hi), max(y_lo, lo), min(y_hi, hi)
        for _ in range(tries_per_object):
            x, y = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
            if all(
                max(abs(x - cx), abs(y - cy)) >= half + other + GAP
                for (cx, cy), other in zip(centres, half_sides)
            ):
                centres.append((x, y))
                break
        else:
            return None
    return centres


def relation_offsets(relation: str, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(offset along the relation's axis, off-axis offset); positive along-axis means it holds."""
    dx, dy = b[0] - a[0], b[1] - a[1]  # image y grows downwards
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along, abs(across)


def _relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    along, across = relation_offsets(relation, a, b)
    return along >= RELATION_MIN_OFFSET and across <= RELATION_MAX_SKEW * along


def _sample_background(rng: np.random.Generator, plain: float) -> Background:
    """Neutral greys only (chroma of a few Lab units) so no pixel of it reads as a named colour."""
    light = rng.random() < 0.5
    if rng.random() < plain:
        colour = _neutral(rng, light)
        return Background("plain", colour, colour, 0.0, 0, 0.0)
    return Background(
        "varied", _neutral(rng, light), _neutral(rng, light), float(rng.uniform(0, 360)),
        int(rng.integers(2**31)), float(rng.uniform(2, 6)),
    )


def _neutral(rng: np.random.Generator, light: bool) -> tuple[int, int, int]:
    base = rng.uniform(200, 245) if light else rng.uniform(25, 70)
    return tuple(int(round(base + t)) for t in rng.uniform(-3, 3, 3))
