"""Scene -> RGB image at any resolution.

The background is a smooth function of the scene's parameters evaluated at pixel
centres (noise lives on a fixed coarse grid and is interpolated), and objects are
drawn supersampled, so a 64 px and a 256 px render show the same picture.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from .geometry import alpha_mask
from .scene import Background, Scene

NOISE_GRID = 8  # noise control points per side, independent of output size


def render(scene: Scene, size: int) -> Image.Image:
    """Deterministic anti-aliased render; same scene and size give identical bytes."""
    image = Image.fromarray(_background(scene.background, size), "RGB")
    for obj in scene.objects:
        mask, corner = alpha_mask(obj.shape, (obj.x * size, obj.y * size), obj.size * size, obj.rotation)
        image.paste(obj.rgb, (*corner, corner[0] + mask.width, corner[1] + mask.height), mask)
    return image


def _background(bg: Background, size: int) -> np.ndarray:
    if bg.kind == "plain":
        return np.broadcast_to(np.array(bg.colour_a, np.uint8), (size, size, 3)).copy()
    u = (np.arange(size) + 0.5) / size - 0.5  # pixel centres, in [-0.5, 0.5]
    theta = math.radians(bg.angle)
    t = (u[None, :] * math.cos(theta) + u[:, None] * math.sin(theta)) / (abs(math.cos(theta)) + abs(math.sin(theta)))
    t = t + 0.5  # 0 at one corner side, 1 at the opposite
    a, b = np.array(bg.colour_a, np.float32), np.array(bg.colour_b, np.float32)
    grid = np.random.default_rng(bg.noise_seed).standard_normal((NOISE_GRID, NOISE_GRID)).astype(np.float32)
    weights = _interpolation_weights(size)
    noise = bg.noise_amp * (weights @ grid @ weights.T)
    rgb = a + (b - a) * t[..., None].astype(np.float32) + noise[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _interpolation_weights(size: int) -> np.ndarray:
    """(size, NOISE_GRID) linear-interpolation matrix from grid nodes to pixel centres."""
    pos = ((np.arange(size) + 0.5) / size) * (NOISE_GRID - 1)
    nodes = np.arange(NOISE_GRID)
    return np.clip(1 - np.abs(pos[:, None] - nodes[None, :]), 0, None).astype(np.float32)
