"""True pictures of a suite item's scene: the reference set of the distances and the ground truth of super-resolution."""

from __future__ import annotations

import numpy as np
import PIL.Image

from imagen_demo.shapes import Spec, render, sample_scene


def reference_renders(spec: dict, seed: int, size: int) -> PIL.Image.Image:
    """A true shapes-world picture of `spec` (the scene drawn with `seed`) at `size` px."""
    return render(sample_scene(Spec.from_dict(spec), np.random.default_rng(seed)), size)
