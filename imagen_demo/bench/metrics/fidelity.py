"""How close super-resolved images are to the true high-resolution renders: PSNR and SSIM (torchmetrics')."""

from __future__ import annotations

import PIL.Image

from .pixels import unit_range_tensor


def sr_fidelity(preds: list[PIL.Image.Image], targets: list[PIL.Image.Image]) -> list[dict[str, float]]:
    """Per-image PSNR (dB) and SSIM on [0, 1] RGB, super-resolved vs the true high-resolution render."""
    # Imported on use: torchmetrics takes seconds to import, and only runs that super-resolve need it.
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    out = []
    for pred, target in zip(preds, targets):
        p, t = unit_range_tensor([pred]), unit_range_tensor([target])
        out.append({"psnr_sr": float(peak_signal_noise_ratio(p, t, data_range=1.0)),
                    "ssim_sr": float(structural_similarity_index_measure(p, t, data_range=1.0))})
    return out
