"""The shapes world: a procedural text-image world with exact, pixel-level ground truth.

spec (what a caption asserts) -> scene (a concrete layout) -> render (pixels at any size);
captions in English and Chinese parse back to the spec; `verify` checks an image against a spec.
"""

from .captions import LANGUAGES, caption, parse_caption
from .detect import DetectedObject, detect_objects
from .example import Example, sample_example
from .render import render
from .scene import Scene, sample_scene
from .spec import ObjectGroup, Spec
from .splits import held_out_combos, is_held_out, sample_spec, test_suite
from .verify import CHECK_KINDS, Check, VerifyResult, check_objects, layout_holds, verify
from .vocab import CATEGORIES, COLOURS, SHAPES

__all__ = [
    "CATEGORIES", "CHECK_KINDS", "COLOURS", "Check", "DetectedObject", "Example", "LANGUAGES", "ObjectGroup",
    "SHAPES", "Scene", "Spec", "VerifyResult", "caption", "check_objects", "detect_objects", "held_out_combos",
    "is_held_out", "layout_holds", "parse_caption", "render", "sample_example", "sample_scene", "sample_spec", "test_suite", "verify",
]
