"""Efficient U-Net (Imagen, Saharia et al. 2022, appendix B), as a diffusers ModelMixin + ConfigMixin.

What makes it "efficient", and what the code below follows:
- more residual blocks at low resolution, fewer at high (``layers_per_block`` per level);
- a DBlock downsamples *before* its residual blocks, a UBlock upsamples *after* them;
- U-Net skip connections are scaled by 1/sqrt(2) before they are concatenated;
- conditioning: timestep embedding + pooled text embedding (+ noise-augmentation level for
  super-resolution) is one vector that scales and shifts (FiLM) every residual block;
- text tokens are layer-normed, then attended to by cross-attention at chosen resolutions.

The super-resolution variant (``low_res_conditioning=True``) takes the already upsampled and
noise-augmented low-resolution image by channel concatenation, plus its augmentation level. With
``low_res_residual=True`` it denoises the residual to the (clean) upsampled image instead of the image itself
(SRDiff, Li et al. 2022, arXiv 2104.14951): on flat-colour pictures that residual is zero except along edges,
so the stage has only the detail to learn, not the whole picture again.

Two options buy accuracy per CPU-second (see recipes/shapes-default.toml):
- ``patch_size`` p > 1 folds each p x p pixel patch into channels (space-to-depth) before the first convolution
  and unfolds the output (depth-to-space), so the U-Net runs at 1/p of the image side: the same idea as the
  downsampling first layer of "simple diffusion" (Hoogeboom et al. 2023). Lossless, since it only reshapes.
- ``text_adapter_layers`` adds trainable transformer layers (with learned positions) over the frozen encoder's
  tokens before pooling and cross-attention, which helps bind attributes to objects (arXiv 2406.07844).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook

# What the U-Net's output means: the noise, the velocity (Salimans & Ho 2022), or the clean image itself. The last
# suits a residual super-resolution stage, whose clean target is zero on every flat region: predicting it directly
# keeps backgrounds clean, where an epsilon or v output has to reproduce the input noise exactly to say "nothing here".
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
from torch import nn

SKIP_SCALE = 2**-0.5
# Noise-augmentation levels live in [0, 1]; they are embedded like timesteps on this scale.
NOISE_LEVEL_SCALE = 1000.0


class TextConditioning(NamedTuple):
    """The text-only part of a forward: the same at every denoising step, so a sampling loop computes it once."""

    tokens: torch.Tensor  # layer-normed (and adapted) text tokens, attended to by cross-attention
    mask: torch.Tensor  # bool, True = token
    embedding: torch.Tensor  # the pooled text's contribution to the conditioning vector
    layout: torch.Tensor | None = None  # the layout prior's map on the U-Net's grid, if it has one


def _groups(channels: int, preferred: int) -> int:
    return math.gcd(channels, preferred)


def _per_level(value, levels: int, name: str) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels
    if len(values) != levels:
        raise ValueError(f"{name} has {len(values)} entries but block_out_channels has {levels} levels")
    return values


class Attention(nn.Module):
    """Multi-head attention of `query` tokens over `context` tokens (self-, cross- or pooling attention)."""

    def __init__(self, query_dim: int, context_dim: int, head_dim: int):
        super().__init__()
        self.heads = max(1, query_dim // head_dim)
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = query.shape
        q = self.to_q(query).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = (t.view(b, context.shape[1], self.heads, -1).transpose(1, 2) for t in self.to_kv(context).chunk(2, -1))
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class AttentionPool(nn.Module):
    """Pool text tokens into one vector with a learned query (the paper's attention pooling)."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) / math.sqrt(dim))
        self.attention = Attention(dim, dim, head_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attention(self.query.expand(tokens.shape[0], -1, -1), tokens, mask)[:, 0]


def grid_coordinates(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 2, height, width): each cell's centre, x then y, in [-1, 1] (CoordConv, Liu et al. 2018)."""
    ys = (torch.arange(height, device=device) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=device) + 0.5) / width * 2 - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y])[None]


POSITION_PARTS = ("coordinate_in", "positions", "layout")  # the modules that tell a layer where it is
POSITION_FREQUENCIES = 5  # pi, 2 pi, ..., 16 pi across the image: down to about two cells of a 32 x 32 grid


def sinusoidal_positions_2d(height: int, width: int, device=None) -> torch.Tensor:
    """(height * width, 4 * POSITION_FREQUENCIES) fixed sin/cos features of each cell's x and y, row-major like the
    tokens of a flattened feature map. Defined for any grid, so they need no learned table per resolution."""
    frequencies = math.pi * 2.0 ** torch.arange(POSITION_FREQUENCIES, device=device, dtype=torch.float32)
    x, y = grid_coordinates(height, width, device)[0].flatten(1)  # (h * w,) each
    angles = torch.cat([x[:, None] * frequencies, y[:, None] * frequencies], dim=1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)


class TextAdapter(nn.Module):
    """Trainable pre-norm transformer layers with learned positions over the frozen encoder's tokens."""

    def __init__(self, dim: int, layers: int, max_tokens: int, head_dim: int):
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(1, max_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, max(1, dim // head_dim), 2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] > self.positions.shape[1]:
            raise ValueError(f"{tokens.shape[1]} text tokens but the adapter has positions for {self.positions.shape[1]}")
        return self.layers(tokens + self.positions[:, : tokens.shape[1]], src_key_padding_mask=~mask)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, with the conditioning vector as scale and shift (FiLM) in between."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels, groups), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels, groups), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class LayoutPrior(nn.Module):
    """Where the prompt puts things, before any pixel is seen: a coarse map of the expected foreground colour on the
    U-Net's grid, made from each cell's fixed position features attending to the prompt's tokens, and fed to the
    first layer through a zero-initialised convolution.

    Sampling decides the layout at noise levels where the picture is nearly all noise. There the denoising loss
    says little about place (at t = 999 knowing the place lowers it by about 2%, next to the unknown background),
    so a U-Net learns "what" from the prompt long before "where". This map is trained by its own loss instead
    (`layout_target`: the clean image minus its background, averaged to the grid), a plain regression from text to
    the mean picture, which the denoiser then only has to read. It never reads the noisy picture, so it is the same
    at every noise level; a grown model starts out computing what it did before.
    """

    def __init__(self, text_dim: int, channels: int, out_channels: int, head_dim: int, hidden: int = 64):
        super().__init__()
        self.places = nn.Linear(4 * POSITION_FREQUENCIES, hidden)
        self.attention = Attention(hidden, text_dim, head_dim)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_channels))
        self.inject = nn.Conv2d(out_channels, channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.inject.weight)

    def forward(self, h: int, w: int, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """(batch, out_channels, h, w): the expected foreground (image minus background) at each cell."""
        places = self.places(sinusoidal_positions_2d(h, w, text.device).to(text.dtype))
        found = self.attention(places.expand(text.shape[0], -1, -1), text, text_mask)
        return self.head(places + found).transpose(1, 2).reshape(text.shape[0], -1, h, w)


def layout_target(images: torch.Tensor, grid: int) -> torch.Tensor:
    """What `LayoutPrior` learns to predict: each image minus its median colour (its background, for pictures of a
    few objects), area-averaged to `grid` x `grid`."""
    background = images.flatten(2).median(dim=2).values[:, :, None, None]
    return F.adaptive_avg_pool2d(images - background, grid)


class SpatialAttention(nn.Module):
    """Self-attention over pixels and/or cross-attention from pixels to text tokens, pre-norm, residual."""

    def __init__(self, channels: int, text_dim: int, head_dim: int, groups: int, self_attention: bool, cross_attention: bool,
                 positions: bool = False):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        # Where each pixel is, added to the attention's input: a convolution knows its place only through zero
        # padding, so without this a query at the top looks like one at the bottom and "at the top" has nothing to
        # match. Zero-initialised, so a grown model starts out computing what it computed before.
        self.positions = nn.Linear(4 * POSITION_FREQUENCIES, channels, bias=False) if positions else None
        if positions:
            nn.init.zeros_(self.positions.weight)
        self.self_attention = Attention(channels, channels, head_dim) if self_attention else None
        self.cross_norm = nn.LayerNorm(channels) if cross_attention else None
        self.cross_attention = Attention(channels, text_dim, head_dim) if cross_attention else None

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        if self.positions is not None:
            tokens = tokens + self.positions(sinusoidal_positions_2d(h, w, x.device).to(tokens.dtype))
        out = tokens
        if self.self_attention is not None:
            out = out + self.self_attention(tokens, tokens)
        if self.cross_attention is not None:
            out = out + self.cross_attention(self.cross_norm(out), text, text_mask)
        return x + (out - tokens).transpose(1, 2).reshape(b, c, h, w)


class Level(nn.Module):
    """Residual blocks then optional attention: the body shared by a DBlock and a UBlock."""

    def __init__(self, in_channels, channels, layers, emb_dim, text_dim, head_dim, groups, dropout, self_attn, cross_attn,
                 positions=False):
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else channels, channels, emb_dim, groups, dropout) for i in range(layers)
        )
        self.attention = (
            SpatialAttention(channels, text_dim, head_dim, groups, self_attn, cross_attn, positions)
            if self_attn or cross_attn else None
        )

    def forward(self, x, emb, text, text_mask):
        for block in self.resblocks:
            x = block(x, emb)
        return x if self.attention is None else self.attention(x, text, text_mask)


class EfficientUNet(ModelMixin, ConfigMixin):
    """Text-conditioned pixel-space U-Net for one Imagen cascade stage (base or super-resolution)."""

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        in_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: tuple[int, ...] = (128, 256, 384, 512),
        layers_per_block: int | tuple[int, ...] = (2, 2, 2, 2),
        self_attention: bool | tuple[bool, ...] = (False, False, True, True),
        cross_attention: bool | tuple[bool, ...] = (False, True, True, True),
        attention_head_dim: int = 64,
        text_embed_dim: int = 384,
        text_pooling: str = "attention",
        low_res_conditioning: bool = False,
        low_res_residual: bool = False,
        prediction_type: str = "epsilon",
        norm_num_groups: int = 32,
        dropout: float = 0.0,
        patch_size: int = 1,
        text_adapter_layers: int = 0,
        max_text_tokens: int = 256,
        coordinate_input: bool = False,
        attention_positions: bool = False,
        layout_prior: bool = False,
    ):
        super().__init__()
        levels = len(block_out_channels)
        layers = _per_level(layers_per_block, levels, "layers_per_block")
        self_attn = _per_level(self_attention, levels, "self_attention")
        cross_attn = _per_level(cross_attention, levels, "cross_attention")
        if text_pooling not in ("attention", "mean"):
            raise ValueError(f"text_pooling must be 'attention' or 'mean', got {text_pooling!r}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if low_res_residual and not low_res_conditioning:
            raise ValueError("low_res_residual needs a super-resolution U-Net (low_res_conditioning=True)")
        if patch_size < 1 or sample_size % (patch_size * 2 ** (levels - 1)):
            raise ValueError(f"sample_size {sample_size} must be divisible by patch_size * 2**{levels - 1} for {levels} levels")

        ch0, emb_dim, groups = block_out_channels[0], 4 * block_out_channels[0], norm_num_groups
        self.time_proj = Timesteps(ch0, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(ch0, emb_dim)
        self.text_norm = nn.LayerNorm(text_embed_dim)
        self.text_adapter = TextAdapter(text_embed_dim, text_adapter_layers, max_text_tokens, attention_head_dim) if text_adapter_layers else None
        self.text_pool = AttentionPool(text_embed_dim, attention_head_dim) if text_pooling == "attention" else None
        self.text_embedding = nn.Sequential(nn.Linear(text_embed_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.noise_level_embedding = TimestepEmbedding(ch0, emb_dim) if low_res_conditioning else None

        inputs = in_channels * (2 if low_res_conditioning else 1)
        self.conv_in = nn.Conv2d(inputs * patch_size**2, ch0, 3, padding=1)
        # Each cell's (x, y) into the first layer's output, zero-initialised like the attention positions below.
        self.coordinate_in = nn.Conv2d(2, ch0, 3, padding=1, bias=False) if coordinate_input else None
        if coordinate_input:
            nn.init.zeros_(self.coordinate_in.weight)
        self.layout = LayoutPrior(text_embed_dim, ch0, in_channels, attention_head_dim) if layout_prior else None
        level_args = dict(emb_dim=emb_dim, text_dim=text_embed_dim, head_dim=attention_head_dim, groups=groups, dropout=dropout,
                          positions=attention_positions)
        self.downsamplers = nn.ModuleList(
            nn.Conv2d(block_out_channels[i - 1], ch, 3, stride=2, padding=1) if i else nn.Identity()
            for i, ch in enumerate(block_out_channels)
        )
        self.down_levels = nn.ModuleList(
            Level(ch, ch, layers[i], self_attn=self_attn[i], cross_attn=cross_attn[i], **level_args)
            for i, ch in enumerate(block_out_channels)
        )
        deepest = block_out_channels[-1]
        # The middle block attends like the deepest level: a crop-trained SR U-Net must have no self-attention
        # anywhere, since crop tokens at training are not full-image tokens at sampling (the paper's 1024 px stage).
        self.mid = Level(deepest, deepest, 2, self_attn=self_attn[-1], cross_attn=cross_attn[-1], **level_args)
        self.up_levels = nn.ModuleList(
            Level(2 * ch, ch, layers[i], self_attn=self_attn[i], cross_attn=cross_attn[i], **level_args)
            for i, ch in enumerate(block_out_channels)
        )
        self.upsamplers = nn.ModuleList(
            nn.Conv2d(ch, block_out_channels[i - 1], 3, padding=1) if i else nn.Identity()
            for i, ch in enumerate(block_out_channels)
        )
        self.norm_out = nn.GroupNorm(_groups(ch0, groups), ch0)
        self.conv_out = nn.Conv2d(ch0, out_channels * patch_size**2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _check_inputs(self, sample, text, low_res, noise_level):
        cfg = self.config
        levels = len(cfg.block_out_channels)
        if sample.ndim != 4 or sample.shape[1] != cfg.in_channels:
            raise ValueError(f"sample must be (batch, {cfg.in_channels}, height, width), got {tuple(sample.shape)}")
        multiple = cfg.patch_size * 2 ** (levels - 1)
        if any(side % multiple for side in sample.shape[-2:]):
            raise ValueError(f"image sides {tuple(sample.shape[-2:])} must be divisible by {multiple}")
        if text.ndim != 3 or text.shape[-1] != cfg.text_embed_dim or text.shape[0] != sample.shape[0]:
            raise ValueError(
                f"encoder_hidden_states must be (batch={sample.shape[0]}, tokens, {cfg.text_embed_dim}), got {tuple(text.shape)}"
                " (is this U-Net paired with the right text encoder?)"
            )
        if cfg.low_res_conditioning:
            if low_res is None or noise_level is None:
                raise ValueError("this super-resolution U-Net needs low_res (upsampled image) and noise_level")
            if low_res.shape != sample.shape:
                raise ValueError(f"low_res must be upsampled to the sample's shape {tuple(sample.shape)}, got {tuple(low_res.shape)}")
        elif low_res is not None:
            raise ValueError("low_res was given but this U-Net is a base model (low_res_conditioning=False)")

    @apply_forward_hook  # under model CPU offload, moves the U-Net to the accelerator as forward does
    def encode_text(self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None = None) -> TextConditioning:
        """Normed, adapted and pooled text: what `forward` takes in place of the raw embeddings to skip this work."""
        if encoder_attention_mask is None:
            encoder_attention_mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool, device=encoder_hidden_states.device)
        tokens = self.text_norm(encoder_hidden_states.to(self.text_norm.weight.dtype))
        mask = encoder_attention_mask.bool()
        if self.text_adapter is not None:
            tokens = self.text_adapter(tokens, mask)
        pooled = self.text_pool(tokens, mask) if self.text_pool is not None else masked_mean(tokens, mask)
        grid = self.config.sample_size // self.config.patch_size
        layout = None if self.layout is None else self.layout(grid, grid, tokens, mask)
        return TextConditioning(tokens, mask, self.text_embedding(pooled), layout)

    def condition(self, timestep, text: TextConditioning, noise_level, batch: int, dtype) -> torch.Tensor:
        """The one conditioning vector: timestep + pooled text (+ noise-augmentation level)."""
        device = text.tokens.device
        t = torch.as_tensor(timestep, device=device).reshape(-1).expand(batch)
        emb = self.time_embedding(self.time_proj(t).to(dtype)) + text.embedding
        if self.noise_level_embedding is not None:
            level = torch.as_tensor(noise_level, device=device).reshape(-1).expand(batch) * NOISE_LEVEL_SCALE
            emb = emb + self.noise_level_embedding(self.time_proj(level).to(dtype))
        return emb

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor | TextConditioning,
        encoder_attention_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        noise_level: torch.Tensor | float | None = None,
        return_layout: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict epsilon, v or x0 for `sample` at `timestep`; `noise_level` is the SR augmentation level in [0, 1].

        `encoder_hidden_states` is the text encoder's output, or `encode_text` of it (which holds the mask).
        `return_layout` also returns the layout prior's map (what its own loss is computed on, in training).
        """
        encoded = isinstance(encoder_hidden_states, TextConditioning)
        self._check_inputs(sample, encoder_hidden_states.tokens if encoded else encoder_hidden_states, low_res, noise_level)
        text = encoder_hidden_states if encoded else self.encode_text(encoder_hidden_states, encoder_attention_mask)
        emb = self.condition(timestep, text, noise_level, sample.shape[0], sample.dtype)
        layout, text, mask = text.layout, text.tokens, text.mask

        x = sample if low_res is None else torch.cat([sample, low_res.to(sample.dtype)], dim=1)
        x = self.conv_in(F.pixel_unshuffle(x, self.config.patch_size))
        if self.coordinate_in is not None:
            x = x + self.coordinate_in(grid_coordinates(*x.shape[-2:], x.device).to(x.dtype))
        if self.layout is not None:
            if layout is None or layout.shape[-2:] != x.shape[-2:]:  # a sample of another size than the config's
                layout = self.layout(*x.shape[-2:], text, mask)
            x = x + self.layout.inject(layout.to(x.dtype))
        skips = []
        for downsample, level in zip(self.downsamplers, self.down_levels):
            x = level(downsample(x), emb, text, mask)
            skips.append(x)
        x = self.mid(x, emb, text, mask)
        for i in reversed(range(len(self.up_levels))):
            x = self.up_levels[i](torch.cat([x, skips[i] * SKIP_SCALE], dim=1), emb, text, mask)
            if i:
                x = self.upsamplers[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        out = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(x))), self.config.patch_size)
        return (out, layout) if return_layout else out
