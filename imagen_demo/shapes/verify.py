"""Does an image show what a spec asserts? Exact, pixel-only checks (GenEval with exact truth).

Each assertion of the spec becomes one named Check, so results can be aggregated by
kind (colour, shape, count, position, relation, binding, ...) as well as all-or-nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from .detect import DetectedObject, detect_objects
from .scene import relation_offsets
from .spec import ObjectGroup, Spec
from .vocab import SIZE_RANGES

CHECK_KINDS = ("object", "colour", "shape", "count", "size", "position", "relation", "binding")
# Longest side above this (fraction of the image) reads "large", below "small".
SIZE_THRESHOLD = (SIZE_RANGES["small"][1] + SIZE_RANGES["large"][0]) / 2
# Verifier regions for absolute positions: centroid coordinate bounds, wider than the sampler's.
SIDE_LIMIT = 0.4  # "left": x < 0.4, "right": x > 0.6, likewise top/bottom on y
CENTER_LIMIT = 0.12  # "center": |x - .5| and |y - .5| below this
RELATION_MIN_ALONG = 0.08  # centroids must be this far apart along the relation's axis


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    passed: bool
    detail: str


@dataclass
class VerifyResult:
    checks: list[Check]
    objects: list[DetectedObject] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def score(self) -> float:
        return sum(c.passed for c in self.checks) / len(self.checks) if self.checks else 1.0

    def to_dict(self) -> dict:
        return {
            "passed": self.passed, "score": self.score,
            "checks": [asdict(c) for c in self.checks], "objects": [asdict(o) for o in self.objects],
        }


def verify(spec: Spec, image: Image.Image | np.ndarray) -> VerifyResult:
    """Check every assertion of `spec` against the objects found in `image` (any resolution)."""
    return check_objects(spec, detect_objects(image))


def check_objects(spec: Spec, objects: list[DetectedObject]) -> VerifyResult:
    """`verify` on objects already detected: many specs against one image detect it once."""
    checks = [check for group in spec.groups for check in _group_checks(group, objects)]
    if len(spec.groups) == 2:
        checks += _binding_checks(spec.groups, objects)
    if spec.relation:
        checks.append(_relation_check(spec, objects))
    return VerifyResult(checks, objects)


def _matches(group: ObjectGroup, objects: list[DetectedObject]) -> list[DetectedObject]:
    return [o for o in objects if o.shape == group.shape and group.colour in (None, o.colour)]


def _describe(group: ObjectGroup) -> str:
    return " ".join(w for w in (group.size, group.colour, group.shape) if w)


def _seen(objects: list[DetectedObject]) -> str:
    return ", ".join(f"{o.colour} {o.shape} at ({o.x:.2f}, {o.y:.2f})" for o in objects) or "nothing"


def _group_checks(group: ObjectGroup, objects: list[DetectedObject]) -> list[Check]:
    name = _describe(group)
    matches = _matches(group, objects)
    checks = [Check(f"{name}: present", "object", bool(matches), f"saw {_seen(objects)}")]
    if group.colour:
        colours = sorted({str(o.colour) for o in objects})
        checks.append(Check(f"{name}: colour {group.colour}", "colour", group.colour in colours, f"colours {colours}"))
    shapes = sorted({str(o.shape) for o in objects})
    checks.append(Check(f"{name}: shape {group.shape}", "shape", group.shape in shapes, f"shapes {shapes}"))
    checks.append(Check(f"{name}: count {group.count}", "count", len(matches) == group.count,
                        f"found {len(matches)}"))
    if group.size:
        sizes = [o.size for o in matches]
        ok = bool(sizes) and all((s > SIZE_THRESHOLD) == (group.size == "large") for s in sizes)
        checks.append(Check(f"{name}: size {group.size}", "size", ok,
                            f"sides {[round(s, 3) for s in sizes]} vs threshold {SIZE_THRESHOLD:.3f}"))
    if group.position:
        ok = len(matches) == 1 and _in_region(group.position, matches[0])
        where = f"({matches[0].x:.2f}, {matches[0].y:.2f})" if matches else "nowhere"
        checks.append(Check(f"{name}: at {group.position}", "position", ok, f"centroid {where}"))
    return checks


def _in_region(position: str, o: DetectedObject) -> bool:
    return {
        "left": o.x < SIDE_LIMIT, "right": o.x > 1 - SIDE_LIMIT,
        "top": o.y < SIDE_LIMIT, "bottom": o.y > 1 - SIDE_LIMIT,
        "center": max(abs(o.x - 0.5), abs(o.y - 0.5)) < CENTER_LIMIT,
    }[position]


def _binding_checks(groups: tuple[ObjectGroup, ...], objects: list[DetectedObject]) -> list[Check]:
    """Attributes stay with their object: no object wears one group's colour with the other's shape."""
    a, b = groups
    if a.colour == b.colour or a.shape == b.shape:
        return []
    swapped = [o for o in objects if (o.colour, o.shape) in ((a.colour, b.shape), (b.colour, a.shape))]
    return [Check(f"no {a.colour} {b.shape} or {b.colour} {a.shape}", "binding", not swapped,
                  f"swapped: {_seen(swapped)}")]


def _relation_check(spec: Spec, objects: list[DetectedObject]) -> Check:
    a, b = (_matches(g, objects) for g in spec.groups)
    name = f"{_describe(spec.groups[0])} {spec.relation} {_describe(spec.groups[1])}"
    if not a or not b:
        return Check(name, "relation", False, "an object is missing")
    along, across = _relation_offsets(spec.relation, a, b)
    return Check(name, "relation", _relation_holds(along, across), f"offset along {along:.2f}, across {across:.2f}")


def _relation_offsets(relation: str, a: list[DetectedObject], b: list[DetectedObject]) -> tuple[float, float]:
    centre = lambda found: (np.mean([o.x for o in found]), np.mean([o.y for o in found]))  # noqa: E731
    return relation_offsets(relation, centre(a), centre(b))


def _relation_holds(along: float, across: float) -> bool:
    return bool(along > RELATION_MIN_ALONG and across < along)  # a Python bool, so to_dict() is JSON


def layout_holds(spec: Spec, objects: list[DetectedObject]) -> bool | None:
    """Is the place the spec asks for right, whatever the shapes? None when it names no place.

    Objects are told apart by colour alone (by shape where both groups share a colour), so this reads "where"
    before a model draws shapes well enough for the `position` and `relation` checks, which need the right shape
    too: the early signal of an A/B on positions, never a replacement for `verify`.
    """
    def named(group: ObjectGroup, other: ObjectGroup | None) -> list[DetectedObject]:
        by_shape = other is not None and other.colour == group.colour
        return [o for o in objects if (o.shape == group.shape if by_shape else o.colour == group.colour)]

    if spec.relation:
        a, b = named(*spec.groups), named(*reversed(spec.groups))
        return bool(a and b) and _relation_holds(*_relation_offsets(spec.relation, a, b))
    group = spec.groups[0]
    if group.position is None:
        return None
    found = named(group, None)
    return len(found) == 1 and _in_region(group.position, found[0])
