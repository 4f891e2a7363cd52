"""Exact compositional correctness: the shapes-world verifier's checks on an image against its prompt's scene."""

from __future__ import annotations

import PIL.Image

from imagen_demo.shapes import Spec, verify


def verifier_scores(image: PIL.Image.Image, spec: dict) -> dict[str, float]:
    """exact = every check passes (GenEval-style); checks = fraction of checks passed."""
    result = verify(Spec.from_dict(spec), image)
    return {"exact": float(result.passed), "checks": float(result.score)}
