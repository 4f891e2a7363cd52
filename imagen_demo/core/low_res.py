"""How a super-resolution stage sees the previous stage's image: upsampled, then noise-augmented.

Imagen's noise-conditioning augmentation: during training the upsampled low-res image is corrupted to a
random level in [0, 1] and the U-Net is told the level; at sampling a fixed level is used. Training and
sampling both call these two functions, so they cannot drift apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s, keeps the schedule from starting too sharply


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of images in [-1, 1] to size x size, clamped back into range."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def cosine_alpha_bar(level: torch.Tensor) -> torch.Tensor:
    """Signal fraction of the continuous cosine schedule: 1 at level 0 (clean), 0 at level 1 (pure noise)."""
    s = _COSINE_OFFSET
    return (torch.cos((level + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)).clamp(0, 1) ** 2


def noise_augment(images: torch.Tensor, level: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Corrupt `images` to `level` (per sample or scalar, in [0, 1]) with the given Gaussian `noise`."""
    level = torch.as_tensor(level, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    if ((level < 0) | (level > 1)).any():
        raise ValueError(f"noise augmentation level must be in [0, 1], got {level.flatten().tolist()}")
    alpha_bar = cosine_alpha_bar(level)
    return alpha_bar.sqrt() * images + (1 - alpha_bar).sqrt() * noise
