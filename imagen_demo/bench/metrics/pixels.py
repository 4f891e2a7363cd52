"""Images as the metrics read them."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch


def unit_range_tensor(images: list[PIL.Image.Image]) -> torch.Tensor:
    """(N, 3, H, W) float RGB in [0, 1], the range torchmetrics and the feature networks take."""
    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
                        for im in images])
