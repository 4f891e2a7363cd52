"""Pixels -> objects: find coloured blobs and name their colour, shape, place and size.

Backgrounds are achromatic and every palette colour is saturated, so foreground is
"far from the background's chroma". Each blob is then described on its own: colour
from its most saturated pixels, shape from a sub-pixel coverage map (the blob's
pixels projected onto the object-vs-background colour axis, which undoes both
anti-aliasing and blur). Nothing here reads a scene; it only knows what the shapes
look like, learned from the same rasteriser the renderer uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from .geometry import alpha_mask
from .scene import MAX_ROTATION
from .vocab import COLOURS, SHAPES

FOREGROUND_CHROMA = 16.0  # Lab a*b* distance from the background that counts as "coloured"
MIN_OBJECT_CHROMA = 28.0  # a blob's most saturated quarter must reach this (palette: >= 40)
MIN_AREA = 0.003  # blobs smaller than this fraction of the image are noise
MAX_COLOUR_DISTANCE = 40.0  # Lab distance beyond which a blob is no named colour
MAX_SHAPE_DISTANCE = 4.0  # normalised feature distance beyond which a blob is no known shape
SHAPE_WORK_SIZE = 48  # blobs are upsampled to about this many pixels across before measuring
PROTOTYPE_SIDES = (9.0, 14.0, 24.0, 48.0)  # pixels: small objects at 64 px up to large ones at 256
PROTOTYPE_BLURS = (0.0, 0.8, 1.6)  # Gaussian sigma in pixels: sharp renders to soft model samples
MAX_RELATIVE_BLUR = 0.09  # blurrier than this (sigma / side) a small star and a circle look alike
CORNER_LEG = 0.3  # corner triangles (legs 0.3 of the box) are full for squares, empty for diamonds
NOTCH_HALF_WIDTH, NOTCH_DEPTH = 0.08, 0.15  # bottom-centre patch: empty only between a star's legs


@dataclass(frozen=True)
class DetectedObject:
    """One blob; x, y (coverage centroid), size (longest box side) and area are image fractions."""

    colour: str | None
    shape: str | None
    x: float
    y: float
    size: float
    area: float
    colour_distance: float
    shape_distance: float


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = c / 255.0
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


_SRGB_TO_LINEAR_LUT = _srgb_to_linear(np.arange(256, dtype=np.float32)).astype(np.float32)
_RGB_TO_XYZ = (np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
               / np.array([[0.9505], [1.0], [1.089]])).T.astype(np.float32)  # D65 white folded in


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..255 (..., 3) -> CIELAB (D65); distances there roughly match perceived ones."""
    rgb = np.asarray(rgb)
    linear = _SRGB_TO_LINEAR_LUT[rgb] if rgb.dtype == np.uint8 else _srgb_to_linear(rgb.astype(np.float32))
    xyz = linear @ _RGB_TO_XYZ
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


PALETTE_LAB = srgb_to_lab(np.array(list(COLOURS.values())))


def detect_objects(image: Image.Image | np.ndarray) -> list[DetectedObject]:
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)[..., :3]
    h, w = pixels.shape[:2]
    lab = srgb_to_lab(pixels)
    rgb = pixels.astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    chroma = np.linalg.norm(lab[..., 1:] - np.median(border[:, 1:], axis=0), axis=-1)
    chroma = ndimage.gaussian_filter(chroma, max(h, w) / 128)  # pixel noise must not make speckles
    foreground = chroma > FOREGROUND_CHROMA
    labels, _ = ndimage.label(foreground, structure=np.ones((3, 3)))
    near_foreground = ndimage.binary_dilation(foreground, iterations=2)
    border_rgb = np.median(np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]), axis=0)
    objects = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        blob_chroma = chroma[box][labels[box] == index]
        if blob_chroma.size >= MIN_AREA * h * w and np.quantile(blob_chroma, 0.75) >= MIN_OBJECT_CHROMA:
            objects.append(_describe(rgb, chroma, labels, index, box, near_foreground, border_rgb))
    return objects


def _describe(rgb, chroma, labels, index, box, near_foreground, border_rgb) -> DetectedObject:
    h, w = labels.shape
    pad = 3
    (y0, y1), (x0, x1) = [(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, (h, w))]
    crop = (slice(y0, y1), slice(x0, x1))
    blob = labels[crop] == index
    colour_rgb = rgb[crop][blob][_top_quartile(chroma[crop][blob])].mean(axis=0)
    outside = ~near_foreground[crop]
    background = np.median(rgb[crop][outside], axis=0) if outside.sum() >= 8 else border_rgb
    axis = colour_rgb - background
    coverage = ((rgb[crop] - background) @ axis) / max(axis @ axis, 1e-6)
    coverage = np.clip(coverage, 0, 1) * ndimage.binary_dilation(blob, iterations=2)
    colour, colour_distance = _nearest_colour(colour_rgb)
    shape, shape_distance, side = classify_shape(coverage)
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    total = coverage.sum()
    return DetectedObject(
        colour, shape, float((coverage * xs).sum() / total / w), float((coverage * ys).sum() / total / h),
        side / max(h, w), float(total / (h * w)), colour_distance, shape_distance,
    )


def _nearest_colour(rgb: np.ndarray) -> tuple[str | None, float]:
    distances = np.linalg.norm(PALETTE_LAB - srgb_to_lab(rgb), axis=-1)
    best = int(distances.argmin())
    name = list(COLOURS)[best] if distances[best] <= MAX_COLOUR_DISTANCE else None
    return name, float(distances[best])


def classify_shape(coverage: np.ndarray) -> tuple[str | None, float, float]:
    """(shape or None, normalised distance to the nearest prototype, longest box side in pixels)."""
    features, side = shape_features(coverage)
    bank, labels, scale = _prototype_bank()
    distances = np.linalg.norm((bank - features) / scale, axis=1)
    best = int(distances.argmin())
    shape = labels[best] if distances[best] <= MAX_SHAPE_DISTANCE else None
    return shape, float(distances[best]), side


def shape_features(coverage: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale-free features of a coverage map, and its longest box side in input pixels.

    fill (area / box): square 1, circle .79, cross .6, triangle and diamond .5, star .37;
    solidity (area / hull): 1 for convex shapes, cross .75, star .56;
    corner fill: square ~1, triangle ~.3 (its base corners), others ~0;
    centroid drop (centroid below box centre / height): triangle 1/6, star .05, others 0;
    bottom notch fill (centre of the bottom edge): 0 for a star, ~.5 for a diamond, else 1.
    """
    factor = int(np.clip(math.ceil(SHAPE_WORK_SIZE / max(coverage.shape)), 1, 8))
    mask = ndimage.zoom(coverage, factor, order=1) >= 0.5 if factor > 1 else coverage >= 0.5
    parts, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(5), 0.0
    if n > 1:
        mask = parts == 1 + int(np.argmax(ndimage.sum_labels(mask, parts, range(1, n + 1))))
    mask = ndimage.binary_fill_holes(mask)
    ys, xs = np.nonzero(mask)
    top, left = ys.min(), xs.min()
    height, width = ys.max() - top + 1, xs.max() - left + 1
    area = float(mask.sum())
    box = mask[top:top + height, left:left + width]
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    corners = np.minimum.reduce([u[None, :] + v[:, None], 2 - u[None, :] - v[:, None],
                                 1 - u[None, :] + v[:, None], 1 + u[None, :] - v[:, None]]) < CORNER_LEG
    notch = (np.abs(u[None, :] - 0.5) < NOTCH_HALF_WIDTH) & (v[:, None] > 1 - NOTCH_DEPTH)
    features = np.array([
        area / (height * width),
        area / _hull_area(mask),
        box[corners].mean() if corners.any() else 0.0,
        (ys.mean() + 0.5 - top - height / 2) / height,
        box[notch].mean() if notch.any() else 1.0,
    ])
    return features, max(height, width) / factor


def _hull_area(mask: np.ndarray) -> float:
    edge = mask & ~ndimage.binary_erosion(mask)
    ys, xs = np.nonzero(edge)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        return float(ConvexHull(corners).volume)
    except QhullError:  # degenerate (a line of pixels)
        return float(mask.sum())


def _top_quartile(values: np.ndarray) -> np.ndarray:
    """Mask of the largest quarter of `values`: a blob's core, least mixed with background."""
    return values >= np.quantile(values, 0.75)


@lru_cache(maxsize=1)
def _prototype_bank() -> tuple[np.ndarray, list[str], np.ndarray]:
    """Features of every shape rasterised at several sizes, rotations and blurs.

    Blurred coverage is rescaled the way `_describe` rescales a real blob (by its core's
    mean), so soft model outputs meet prototypes that went through the same steps.
    """
    features, labels = [], []
    for shape in SHAPES:
        for side in PROTOTYPE_SIDES:
            for rotation in (-MAX_ROTATION, 0.0, MAX_ROTATION):
                mask, _ = alpha_mask(shape, (side / 2 + 4.3, side / 2 + 4.7), side, rotation)
                sharp = np.asarray(mask, np.float64) / 255
                for blur in (b for b in PROTOTYPE_BLURS if b <= MAX_RELATIVE_BLUR * side):
                    coverage = ndimage.gaussian_filter(sharp, blur)
                    blob = coverage[coverage > 0.25]
                    features.append(shape_features(np.clip(coverage / blob[_top_quartile(blob)].mean(), 0, 1))[0])
                    labels.append(shape)
    bank = np.array(features)
    return bank, labels, bank.std(axis=0)
