"""What a caption asserts: object groups, an optional relation, and the GenEval category.

The category is a pure function of the spec's structure (see `infer_category`), so a
parsed caption recovers it without the parser having to know which template was used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .vocab import CATEGORIES, COLOURS, MAX_COUNT, POSITIONS, RELATIONS, SHAPES, SIZES


@dataclass(frozen=True)
class ObjectGroup:
    """`count` objects of one shape; colour None means "any colour" (single_object only)."""

    shape: str
    colour: str | None = None
    count: int = 1
    size: str | None = None
    position: str | None = None

    def __post_init__(self) -> None:
        _check_in(self.shape, SHAPES, "shape")
        _check_in(self.colour, (*COLOURS, None), "colour")
        _check_in(self.size, (*SIZES, None), "size")
        _check_in(self.position, (*POSITIONS, None), "position")
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"count must be in 1..{MAX_COUNT}, got {self.count}")
        if self.position is not None and self.count != 1:
            raise ValueError("an absolute position needs a single object")


@dataclass(frozen=True)
class Spec:
    """One or two object groups; `relation` reads "groups[0] <relation> groups[1]"."""

    groups: tuple[ObjectGroup, ...]
    relation: str | None = None
    category: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if len(self.groups) not in (1, 2):
            raise ValueError("a spec has one or two object groups")
        _check_in(self.relation, (*RELATIONS, None), "relation")
        if self.relation is not None and (len(self.groups) != 2 or any(g.count != 1 for g in self.groups)):
            raise ValueError("a relation needs exactly two single objects")
        if len(self.groups) == 2:
            a, b = self.groups
            if (a.colour, a.shape) == (b.colour, b.shape):
                raise ValueError("the two groups must differ in colour or shape")
            if a.position or b.position:
                raise ValueError("absolute positions are only for single-group specs")
        inferred = infer_category(self.groups, self.relation)
        if self.category and self.category != inferred:
            raise ValueError(f"category {self.category!r} does not match structure ({inferred!r})")
        object.__setattr__(self, "category", inferred)

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)

    def to_dict(self) -> dict:
        return {"groups": [asdict(g) for g in self.groups], "relation": self.relation, "category": self.category}

    @classmethod
    def from_dict(cls, d: dict) -> Spec:
        return cls(tuple(ObjectGroup(**g) for g in d["groups"]), d.get("relation"), d.get("category", ""))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Spec:
        return cls.from_dict(json.loads(text))


def infer_category(groups: tuple[ObjectGroup, ...], relation: str | None) -> str:
    """GenEval family from structure: where things are > how many > which colours."""
    if relation is not None or any(g.position for g in groups):
        return "position"
    if len(groups) == 1:
        g = groups[0]
        if g.count > 1:
            return "counting"
        return "colors" if g.colour else "single_object"
    return "color_attr" if groups[0].colour != groups[1].colour else "two_object"


def sample_category_spec(rng: np.random.Generator, category: str) -> Spec:
    """Draw a spec of one category, ignoring splits (see splits.sample_spec)."""
    _check_in(category, CATEGORIES, "category")
    names = tuple(COLOURS)
    if category in ("single_object", "colors", "counting") or (category == "position" and rng.random() < 0.5):
        shape, colour, size = _choice(rng, SHAPES), _choice(rng, names), _choice(rng, (*SIZES, None))
        if category == "single_object":
            return Spec((ObjectGroup(shape, None, 1, size),))
        if category == "colors":
            return Spec((ObjectGroup(shape, colour, 1, size),))
        if category == "counting":
            return Spec((ObjectGroup(shape, colour, int(rng.integers(2, MAX_COUNT + 1)), size),))
        return Spec((ObjectGroup(shape, colour, 1, size, _choice(rng, POSITIONS)),))
    shape_a, shape_b = rng.choice(len(SHAPES), size=2, replace=False)
    colour_a, colour_b = rng.choice(len(COLOURS), size=2, replace=False)
    if category == "two_object":
        colour_b = colour_a
    elif category == "position" and rng.random() < 0.5:
        # Relations also pair same-colour or same-shape objects, so only the layout differs.
        shape_b, colour_b = (shape_a, colour_b) if rng.random() < 0.5 else (shape_b, colour_a)
    groups = (ObjectGroup(SHAPES[shape_a], names[colour_a]), ObjectGroup(SHAPES[shape_b], names[colour_b]))
    relation = _choice(rng, RELATIONS) if category == "position" else None
    return Spec(groups, relation)


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _check_in(value, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {allowed}")
