"""Efficient U-Net structure and conditioning."""

from __future__ import annotations

import pytest
import torch

from imagen_demo import PRESETS, EfficientUNet, unet_from_preset
from imagen_demo.core.low_res import cosine_alpha_bar, noise_augment
from imagen_demo.core.unet import SpatialAttention
from tiny import randomize_zero_inits


def _inputs(batch=2, size=16, dim=384, tokens=5):
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[1, 2:] = False
    return torch.randn(batch, 3, size, size), torch.tensor([10, 700]), torch.randn(batch, tokens, dim), mask


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_output_depends_on_text_through_pooling_and_cross_attention(pooling):
    torch.manual_seed(0)
    unet = randomize_zero_inits(unet_from_preset("tiny-base", text_pooling=pooling))
    x, t, text, mask = _inputs()
    out = unet(x, t, text, mask)
    assert out.shape == x.shape
    assert not torch.allclose(out, unet(x, t, text + 1.0, mask))
    masked_change = text.clone()
    masked_change[1, 2:] += 5.0  # only padding tokens of sample 1 change
    torch.testing.assert_close(out[1], unet(x, t, masked_change, mask)[1], atol=1e-5, rtol=1e-5)


def test_blocks_follow_the_efficient_unet_ordering():
    unet = unet_from_preset("tiny-base")
    assert isinstance(unet.downsamplers[1], torch.nn.Conv2d) and unet.downsamplers[1].stride == (2, 2)
    seen = []
    for name in ("downsamplers.1", "down_levels.1.resblocks.0", "up_levels.1.resblocks.0", "upsamplers.1"):
        unet.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: seen.append((name, tuple(o.shape[-2:]))))
    unet(*_inputs())
    # DBlock: downsample before its residual blocks; UBlock: residual blocks, then upsample.
    assert seen == [("downsamplers.1", (8, 8)), ("down_levels.1.resblocks.0", (8, 8)),
                    ("up_levels.1.resblocks.0", (8, 8)), ("upsamplers.1", (16, 16))]


def test_skip_connections_enter_the_up_blocks_scaled_by_one_over_sqrt_two():
    torch.manual_seed(0)
    unet = randomize_zero_inits(unet_from_preset("tiny-base"))
    skips, entering = {}, {}
    for i, level in enumerate(unet.down_levels):
        level.register_forward_hook(lambda m, args, out, i=i: skips.__setitem__(i, out))
    for i, level in enumerate(unet.up_levels):
        level.register_forward_pre_hook(lambda m, args, i=i: entering.__setitem__(i, args[0]))
    unet(*_inputs())
    assert sorted(entering) == sorted(skips) == list(range(len(unet.up_levels)))
    for i, skip in skips.items():  # each up block sees [upsampled path, skip / sqrt(2)] along the channels
        torch.testing.assert_close(entering[i][:, -skip.shape[1]:], skip / 2**0.5)


def test_super_resolution_variant_uses_low_res_and_noise_level():
    torch.manual_seed(0)
    unet = randomize_zero_inits(unet_from_preset("tiny-sr"))
    x, t, text, mask = _inputs(size=32)
    low = torch.randn_like(x)
    out = unet(x, t, text, mask, low_res=low, noise_level=torch.tensor([0.1, 0.1]))
    assert not torch.allclose(out, unet(x, t, text, mask, low_res=low, noise_level=torch.tensor([0.6, 0.6])))
    assert not torch.allclose(out, unet(x, t * 0 + 300, text, mask, low_res=low, noise_level=torch.tensor([0.1, 0.1])))
    assert not torch.allclose(out, unet(x, t, text, mask, low_res=-low, noise_level=torch.tensor([0.1, 0.1])))
    with pytest.raises(ValueError, match="needs low_res"):
        unet(x, t, text, mask)
    with pytest.raises(ValueError, match="upsampled to the sample's shape"):
        unet(x, t, text, mask, low_res=torch.randn(2, 3, 16, 16), noise_level=0.1)


def test_wrong_shapes_are_clear_errors():
    unet = unet_from_preset("tiny-base")
    x, t, text, mask = _inputs()
    with pytest.raises(ValueError, match="divisible by 2"):
        unet(torch.randn(2, 3, 15, 15), t, text, mask)
    with pytest.raises(ValueError, match="sample must be"):
        unet(torch.randn(2, 4, 16, 16), t, text, mask)
    with pytest.raises(ValueError, match="right text encoder"):
        unet(x, t, torch.randn(2, 5, 77), mask)
    with pytest.raises(ValueError, match="divisible"):
        EfficientUNet(sample_size=20, block_out_channels=(8, 8, 8, 8))


def test_presets_build_and_count_parameters():
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in unet_from_preset(name).parameters()) for name in PRESETS}
    assert counts["tiny-base"] < 2e6 and counts["small-base"] < 40e6
    assert 1.5e9 < counts["paper-base"] < 2.5e9, "the paper's base model has 2B parameters"
    assert 0.45e9 < counts["paper-sr256"] < 0.75e9, "the paper's 64->256 model has 600M parameters"


def test_noise_augmentation_endpoints_and_variance():
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(images)
    torch.testing.assert_close(noise_augment(images, 0.0, noise), images)
    torch.testing.assert_close(noise_augment(images, 1.0, noise), noise, atol=1e-6, rtol=0)
    levels = torch.linspace(0, 1, 11)
    assert torch.all(cosine_alpha_bar(levels)[1:] < cosine_alpha_bar(levels)[:-1]), "more level, less signal"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        noise_augment(images, 1.2, noise)


def test_middle_block_attends_like_the_deepest_level():
    """A crop-trained SR U-Net must have no self-attention anywhere, the middle block included."""
    sr = unet_from_preset("tiny-sr")
    assert sr.mid.attention.self_attention is None and sr.mid.attention.cross_attention is not None
    assert not [m for m in sr.modules() if isinstance(m, SpatialAttention) and m.self_attention is not None]
    base = unet_from_preset("tiny-base")
    assert base.mid.attention.self_attention is not None
    no_attention = unet_from_preset("tiny-base", self_attention=False, cross_attention=False)
    assert no_attention.mid.attention is None
    for name in ("cpu-sr", "small-sr", "paper-sr256"):
        with torch.device("meta"):
            unet = unet_from_preset(name)
        assert not [n for n, m in unet.named_modules() if isinstance(m, SpatialAttention) and m.self_attention is not None], name


def test_patch_size_runs_the_unet_on_a_smaller_grid_and_keeps_the_image_size():
    torch.manual_seed(0)
    unet = randomize_zero_inits(unet_from_preset("tiny-base", patch_size=2))
    seen = []
    unet.down_levels[0].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    x, t, text, mask = _inputs()
    out = unet(x, t, text, mask)
    assert out.shape == x.shape and seen == [(8, 8)]  # 16x16 image, 2x2 patches -> 8x8 grid
    # Every pixel of the output depends on its own patch: the patches are unfolded, not blurred away.
    assert (out.abs() > 0).all()
    with pytest.raises(ValueError, match="divisible by 4"):
        unet(torch.randn(2, 3, 18, 18), t, text, mask)
    with pytest.raises(ValueError, match="patch_size"):
        EfficientUNet(sample_size=16, block_out_channels=(8, 8), layers_per_block=1, self_attention=False, cross_attention=False, patch_size=3)


def test_text_adapter_reads_word_order_and_ignores_padding():
    torch.manual_seed(0)
    unet = randomize_zero_inits(unet_from_preset("tiny-base", text_adapter_layers=1))
    x, t, text, mask = _inputs()
    out = unet(x, t, text, mask)
    swapped = text.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # same tokens, other order: learned positions tell them apart
    assert not torch.allclose(out, unet(x, t, swapped, mask), atol=1e-5)
    masked_change = text.clone()
    masked_change[1, 2:] += 5.0
    torch.testing.assert_close(out[1], unet(x, t, masked_change, mask)[1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="positions for"):
        unet_from_preset("tiny-base", text_adapter_layers=1, max_text_tokens=4)(x, t, text, mask)
