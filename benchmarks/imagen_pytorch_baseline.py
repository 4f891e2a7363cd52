"""imagen-pytorch 2.1.0's `Unet`, matched in size to one of ours: the baseline `benchmarks.sampling_speed` times.

imagen-pytorch is optional: `pip install --no-deps -r requirements-bench-speed.txt` (scripts/install does) adds it and
the few modules `Unet` imports, leaving the pinned torch alone. Its package `__init__` imports its trainer (datasets,
ema-pytorch, ...), and `Unet`'s default `text_embed_dim` reads T5's config from the hub when the class is defined;
so `imagen_pytorch.imagen_pytorch` is imported without the package `__init__`, with T5's width given beforehand.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
import types
import warnings

import torch
from transformers import T5Config

from imagen_demo.core.unet import EfficientUNet


def unet_class():
    """imagen-pytorch's `Unet` class, or None when imagen-pytorch is not installed."""
    if "imagen_pytorch.imagen_pytorch" not in sys.modules:
        spec = importlib.util.find_spec("imagen_pytorch")
        if spec is None:
            return None
        package = types.ModuleType("imagen_pytorch")  # the package without its __init__ (trainer, datasets, ...)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["imagen_pytorch"] = package
        t5 = importlib.import_module("imagen_pytorch.t5")

        t5.T5_CONFIGS.setdefault(t5.DEFAULT_T5_NAME, {"config": T5Config(d_model=768)})  # t5-v1_1-base, no hub
    with warnings.catch_warnings():  # kornia, imported by it, still calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        return importlib.import_module("imagen_pytorch.imagen_pytorch").Unet


def _config_like(unet: EfficientUNet, dim: int, text_tokens: int) -> dict:
    """Our U-Net's levels, blocks, attention and head size in imagen-pytorch's terms; its defaults elsewhere.

    `memory_efficient` (downsample before the blocks, as our Efficient U-Net does) follows imagen-pytorch's own
    presets: off for its 64 px base (BaseUnet64), on for its 256 px super-resolution (SRUnet256).
    """
    c = unet.config
    levels = len(c.block_out_channels)
    per_level = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * levels
    return dict(
        dim=dim, dim_mults=tuple(round(ch / c.block_out_channels[0]) for ch in c.block_out_channels),
        num_resnet_blocks=per_level(c.layers_per_block), layer_attns=per_level(c.self_attention),
        layer_cross_attns=per_level(c.cross_attention), attend_at_middle=per_level(c.self_attention)[-1],
        attn_dim_head=c.attention_head_dim, text_embed_dim=c.text_embed_dim, max_text_len=text_tokens,
        lowres_cond=c.low_res_conditioning, memory_efficient=c.low_res_conditioning,
    )


def matched_unet(unet: EfficientUNet, text_tokens: int) -> torch.nn.Module:
    """The imagen-pytorch `Unet` shaped like `unet` whose base width (a multiple of 8) gives the closest parameter count."""
    Unet = unet_class()
    if Unet is None:
        raise ModuleNotFoundError("imagen-pytorch is not installed: pip install --no-deps -r requirements-bench-speed.txt")
    target = sum(p.numel() for p in unet.parameters())

    def build(dim: int) -> torch.nn.Module:
        with contextlib.redirect_stdout(io.StringIO()):  # its advice to use dim >= 128, printed once
            return Unet(**_config_like(unet, dim, text_tokens))

    params = lambda units: sum(p.numel() for p in build(8 * units).parameters())
    low, high = 0, 1  # in units of 8 channels; the parameter count grows with the width
    while params(high) < target:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if params(mid) < target else (low, mid)
    best = min((units for units in (low, high) if units), key=lambda units: abs(params(units) - target))
    return build(8 * best).eval()


def forward(unet: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """One denoising forward on `unet_presets.step_inputs`; imagen-pytorch's times are continuous, in [0, 1]."""
    x = inputs["sample"]
    low_res = {} if inputs["low_res"] is None else dict(lowres_cond_img=inputs["low_res"], lowres_noise_times=inputs["noise_level"])
    return unet(x, torch.full((len(x),), inputs["timestep"] / 1000), text_embeds=inputs["text"], text_mask=inputs["mask"], **low_res)
