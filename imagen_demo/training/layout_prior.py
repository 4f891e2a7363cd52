"""Train a U-Net's layout prior on its own before the denoiser learns to read it.

The prior (`EfficientUNet.layout`, a `LayoutPrior`) maps a prompt to the expected foreground on the U-Net's grid.
Alone it needs only the text encoder and the clean images, so a step costs a small fraction of a denoising step;
and the denoiser can learn to use a map only once the map says something. So a run that starts a prior (from
scratch, or grown into trained weights) first trains it for `layout_prior_steps` steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.unet import EfficientUNet, layout_target


def layout_loss(layout: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-example MSE of a layout prior's map against `layout_target` of the clean images."""
    target = layout_target(images.float(), layout.shape[-1])
    return F.mse_loss(layout.float(), target, reduction="none").mean(dim=(1, 2, 3))


def pretrain_layout_prior(unet: EfficientUNet, encode, data, steps: int, batch_size: int, learning_rate: float,
                          log=print) -> float:
    """Train only `unet.layout` for `steps` batches of `data` (a source with `batch(index, batch_size, size)`);
    the rest of the U-Net is untouched. Returns the mean loss of the last tenth of the steps."""
    grid = unet.config.sample_size // unet.config.patch_size
    optimizer = torch.optim.Adam(unet.layout.parameters(), lr=learning_rate)
    losses = []
    for step in range(steps):
        captions, images = data.batch(step, batch_size, unet.config.sample_size)
        text = encode(captions)
        with torch.no_grad():
            conditioning = unet.encode_text(text.embeddings, text.mask)
        loss = layout_loss(unet.layout(grid, grid, conditioning.tokens, conditioning.mask), images).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log(f"layout prior: step {step + 1}/{steps}, loss {sum(losses[-100:]) / len(losses[-100:]):.4f}")
    tail = losses[-max(1, steps // 10):]
    return sum(tail) / len(tail)
