"""Shape outlines and their anti-aliased rasterisation.

Both the renderer (to draw scenes) and the verifier (to learn what each shape looks
like in pixels) rasterise through `alpha_mask`, so they share one definition of a shape.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

CROSS_HALF_WIDTH = 0.18  # arm width 0.36 of the side: still >= 3 px wide for a small 64 px cross
STAR_INNER_RATIO = 0.45  # fat points so a small star keeps its concavities at 64 px


@lru_cache(maxsize=None)
def outline(shape: str) -> np.ndarray:
    """Polygon vertices (k, 2) with its bounding box exactly [-0.5, 0.5]^2; y points down."""
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        return 0.5 * np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "square":
        return np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    if shape == "diamond":
        return np.array([[0.0, -0.5], [0.5, 0.0], [0.0, 0.5], [-0.5, 0.0]])
    if shape == "triangle":
        return np.array([[0.0, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    if shape == "cross":
        w, h = CROSS_HALF_WIDTH, 0.5
        return np.array([[-w, -h], [w, -h], [w, -w], [h, -w], [h, w], [w, w],
                         [w, h], [-w, h], [-w, w], [-h, w], [-h, -w], [-w, -w]])
    if shape == "star":
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER_RATIO)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        pts -= (pts.max(0) + pts.min(0)) / 2
        return pts / (pts.max(0) - pts.min(0)).max()
    raise ValueError(f"unknown shape {shape!r}")


def alpha_mask(
    shape: str, centre: tuple[float, float], side: float, rotation: float, supersample: int = 4
) -> tuple[Image.Image, tuple[int, int]]:
    """Coverage of one shape as an "L" image plus its top-left pixel.

    `centre` and `side` are in output pixels (sub-pixel precise); rotation in degrees.
    The polygon is drawn `supersample` times larger and box-filtered down.
    """
    theta = math.radians(rotation)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pts = outline(shape) @ rot.T * side + np.asarray(centre)
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    canvas = Image.new("L", ((x1 - x0) * supersample, (y1 - y0) * supersample), 0)
    local = (pts - [x0, y0]) * supersample
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in local], fill=255)
    return canvas.reduce(supersample), (int(x0), int(y0))
