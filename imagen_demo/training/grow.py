"""Grow a trained U-Net: the same weights in a config that adds zero-initialised parts.

A design change that starts at zero (coordinate input, attention positions, layout attention, another text-adapter
layer, a low-resolution input that makes a base a super-resolution stage) leaves the grown model computing exactly
what the trained one did, so training goes on from committed weights instead of from scratch. Any other difference
(channels, levels, prediction type, ...) would silently drop or reshape trained weights, so it is refused.
"""

from __future__ import annotations

import json

import torch

from ..core.unet import EfficientUNet

# Config fields a grown model may raise, and the parts each adds; every added part starts as zero or identity.
GROWABLE = ("coordinate_input", "attention_positions", "layout_prior", "text_adapter_layers", "low_res_conditioning")
# Fields that change no weight: the same network trained on at another resolution (it is fully convolutional and its
# attention has no learned positions), e.g. a 64 px base continued as a 32 px one.
RESIZABLE = ("sample_size",)


def growth(saved: dict, wanted: dict) -> dict:
    """{field: (saved value, wanted value)} for the fields `wanted` grows; ValueError for any other difference."""
    changed = {key: (saved.get(key), value) for key, value in wanted.items()
               if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(value))}
    refused = {key: pair for key, pair in changed.items()
               if key not in RESIZABLE and (key not in GROWABLE or not pair[1] or pair[0] > pair[1])}
    if refused:
        details = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise ValueError(f"the saved U-Net has another U-Net config than this recipe's ({details}); it cannot continue. "
                         f"Only these may grow (from off/fewer to on/more): {', '.join(GROWABLE)}; "
                         f"and {', '.join(RESIZABLE)} may change")
    return changed


def grow_unet(trained: EfficientUNet, config: dict) -> tuple[EfficientUNet, list[str]]:
    """(a U-Net of `trained`'s config updated with `config`, holding `trained`'s weights, the names of the parameters it adds).

    New text-adapter layers get zero output projections, so each is the identity until it learns (pre-norm
    residual layers). A base grown into a super-resolution stage keeps its first layer's weights for the noisy
    sample's channels, zero for the low-resolution image's, and a zero noise-level embedding. The other added parts
    are zero-initialised by the U-Net itself.
    """
    growth(dict(trained.config), config)
    saved = {key: value for key, value in trained.config.items() if not key.startswith("_")}  # not diffusers' own keys
    grown = EfficientUNet(**{**saved, **config})
    weights = trained.state_dict()
    widened = grown.conv_in.weight.shape != trained.conv_in.weight.shape  # grown into a super-resolution stage
    if widened:
        weights["conv_in.weight"] = _widened_input(weights["conv_in.weight"], grown.conv_in.weight.shape[1])
    missing, unexpected = grown.load_state_dict(weights, strict=False)
    if unexpected:  # unreachable while GROWABLE only adds parts; a guard against a future field that removes some
        raise ValueError(f"the grown config has no place for trained weights {unexpected}")
    if grown.text_adapter is not None:
        old_layers = trained.text_adapter.layers.num_layers if trained.text_adapter is not None else 0
        with torch.no_grad():
            for layer in grown.text_adapter.layers.layers[old_layers:]:
                for linear in (layer.self_attn.out_proj, layer.linear2):
                    linear.weight.zero_()
                    linear.bias.zero_()
    if widened:
        with torch.no_grad():
            grown.noise_level_embedding.linear_2.weight.zero_()
            grown.noise_level_embedding.linear_2.bias.zero_()
    return grown, sorted(missing + ["conv_in.weight"] * widened)


def _widened_input(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """The first convolution's weight with zero columns for the low-resolution image: the U-Net concatenates
    [sample, low_res] before space-to-depth, so the sample's channels come first."""
    wide = weight.new_zeros(weight.shape[0], channels, *weight.shape[2:])
    wide[:, :weight.shape[1]] = weight
    return wide
