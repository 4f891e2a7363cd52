"""Grow a trained U-Net: the same weights in a config that adds zero-initialised parts.

A design change that starts at zero (coordinate input, attention positions, layout attention, another text-adapter
layer) leaves the grown model computing exactly what the trained one did, so training goes on from committed weights
instead of from scratch. Any other difference (channels, levels, prediction type, ...) would silently drop or reshape trained
weights, so it is refused.
"""

from __future__ import annotations

import json

import torch

from ..core.unet import EfficientUNet

# Config fields a grown model may raise, and the parts each adds; every added part starts as zero or identity.
GROWABLE = ("coordinate_input", "attention_positions", "layout_prior", "text_adapter_layers")


def growth(saved: dict, wanted: dict) -> dict:
    """{field: (saved value, wanted value)} for the fields `wanted` grows; ValueError for any other difference."""
    changed = {key: (saved.get(key), value) for key, value in wanted.items()
               if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(value))}
    refused = {key: pair for key, pair in changed.items() if key not in GROWABLE or not pair[1] or pair[0] > pair[1]}
    if refused:
        details = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise ValueError(f"the saved U-Net has another U-Net config than this recipe's ({details}); it cannot continue. "
                         f"Only these may grow (from off/fewer to on/more): {', '.join(GROWABLE)}")
    return changed


def grow_unet(trained: EfficientUNet, config: dict) -> tuple[EfficientUNet, list[str]]:
    """(a U-Net of `trained`'s config updated with `config`, holding `trained`'s weights, the names of the parameters it adds).

    New text-adapter layers get zero output projections, so each is the identity until it learns (pre-norm
    residual layers); the other added parts are zero-initialised by the U-Net itself.
    """
    growth(dict(trained.config), config)
    saved = {key: value for key, value in trained.config.items() if not key.startswith("_")}  # not diffusers' own keys
    grown = EfficientUNet(**{**saved, **config})
    missing, unexpected = grown.load_state_dict(trained.state_dict(), strict=False)
    if unexpected:  # unreachable while GROWABLE only adds parts; a guard against a future field that removes some
        raise ValueError(f"the grown config has no place for trained weights {unexpected}")
    if grown.text_adapter is not None:
        old_layers = trained.text_adapter.layers.num_layers if trained.text_adapter is not None else 0
        with torch.no_grad():
            for layer in grown.text_adapter.layers.layers[old_layers:]:
                for linear in (layer.self_attn.out_proj, layer.linear2):
                    linear.weight.zero_()
                    linear.bias.zero_()
    return grown, sorted(missing)
