"""Named U-Net configurations: tiny (tests), small (the shipped CPU model), and the paper's sizes.

The paper sizes are a reference for what the architecture scales to (2B base, 600M 64->256 SR, with a
4096-d T5-XXL encoder); `python -m benchmarks.unet_presets` prints each preset's parameter count and
seconds per denoising step.
"""

from __future__ import annotations

from .unet import EfficientUNet

PRESETS: dict[str, dict] = {
    "tiny-base": dict(
        sample_size=16, block_out_channels=(16, 32), layers_per_block=1, self_attention=(False, True),
        cross_attention=(False, True), attention_head_dim=8, norm_num_groups=8,
    ),
    "tiny-sr": dict(
        sample_size=32, block_out_channels=(16, 32), layers_per_block=(1, 1), self_attention=False,
        cross_attention=(False, True), attention_head_dim=8, norm_num_groups=8, low_res_conditioning=True,
    ),
    # Shipped default: 64x64 base and 64->256 SR, sized to train and sample on a 2-core CPU. Like the paper's
    # Efficient U-Net, capacity sits at low resolution: 16 channels at 64x64, 128 with attention at 8x8.
    "small-base": dict(
        sample_size=64, block_out_channels=(16, 48, 96, 128), layers_per_block=(1, 1, 2, 2),
        self_attention=(False, False, True, True), cross_attention=(False, True, True, True), attention_head_dim=32,
        norm_num_groups=8,
    ),
    "small-sr": dict(
        sample_size=256, block_out_channels=(16, 32, 64, 128), layers_per_block=(1, 1, 1, 2),
        self_attention=False, cross_attention=(False, False, False, True), attention_head_dim=32, norm_num_groups=8,
        low_res_conditioning=True, prediction_type="v_prediction",
    ),
    # The CPU recipe's base (recipes/shapes-default.toml): 2x2 space-to-depth so the U-Net runs on a 32x32 grid,
    # attention only at 8x8 and 4x4 (self-attention over 256 tokens cost half the step), a one-layer text adapter.
    # 2.3x the training images/s of small-base on the 2-core CPU (benchmarks/train_throughput.py).
    "cpu-base": dict(
        sample_size=64, patch_size=2, block_out_channels=(32, 64, 128, 160), layers_per_block=(1, 1, 2, 2),
        self_attention=(False, False, True, True), cross_attention=(False, True, True, True), attention_head_dim=32,
        norm_num_groups=8, text_adapter_layers=1, prediction_type="v_prediction",
    ),
    # The CPU recipe's 64 -> 256 super-resolution: 2x2 space-to-depth, so it runs on a 128x128 grid; the first level
    # is wider than the 24 channels it folds in (a 4x4 version with 48 channels could not carry every pixel's noise
    # through and never learned to denoise). No self-attention anywhere: it trains on 64x64 crops and samples 256x256.
    "cpu-sr": dict(
        sample_size=256, patch_size=2, block_out_channels=(32, 64, 128), layers_per_block=(1, 1, 2),
        self_attention=False, cross_attention=(False, False, True), attention_head_dim=32, norm_num_groups=8,
        low_res_conditioning=True, prediction_type="v_prediction",
    ),
    # The paper's Imagen (appendix B/F): 2B-parameter 64x64 base, 600M-parameter Efficient U-Net 64->256.
    "paper-base": dict(
        sample_size=64, block_out_channels=(512, 1024, 1536, 2048), layers_per_block=(2, 3, 4, 5),
        self_attention=(False, True, True, True), cross_attention=(False, True, True, True),
        attention_head_dim=64, text_embed_dim=4096,
    ),
    "paper-sr256": dict(
        sample_size=256, block_out_channels=(128, 256, 512, 1024), layers_per_block=(2, 4, 8, 8),
        self_attention=False, cross_attention=(False, False, False, True), attention_head_dim=64,
        text_embed_dim=4096, low_res_conditioning=True,
    ),
}


def unet_from_preset(name: str, **overrides) -> EfficientUNet:
    """A freshly initialised U-Net from a preset, with any config field overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown U-Net preset {name!r}; choose one of {sorted(PRESETS)}")
    return EfficientUNet(**{**PRESETS[name], **overrides})
