"""Reading "where" before "what": layout_holds, the colour locator and the layout diagnostic."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers.image_processor import VaeImageProcessor
from PIL import ImageOps

from imagen_demo import unet_from_preset
from imagen_demo.core.sampling import Stage
from imagen_demo.core.schedulers import training_scheduler
from imagen_demo.core.unet import grid_coordinates, layout_target, sinusoidal_positions_2d
from imagen_demo.shapes import detect_objects, layout_holds, parse_caption, sample_example
from imagen_demo.training.layout import layout_diagnostic, toward_layout
from imagen_demo.training.layout_prior import layout_loss


@pytest.fixture(scope="module")
def placed():
    """True renders of absolute positions (not "center") and of relations between two colours."""
    rng = np.random.default_rng(11)
    examples = (sample_example(rng, category="position") for _ in range(200))
    return [e for e in examples if toward_layout(e.spec, torch.zeros(3, 8, 8)) is not None][:40]


def _mirror(example):
    """The render flipped across the axis its spec names, so the named place becomes the opposite one."""
    spec = example.spec
    axis = spec.relation or spec.groups[0].position
    flip = ImageOps.mirror if axis in ("left", "right", "left of", "right of") else ImageOps.flip
    return flip(example.images[64])


def test_layout_holds_on_true_renders_and_fails_on_mirrored_ones(placed):
    for example in placed:
        assert layout_holds(example.spec, detect_objects(example.images[64])) is True
        assert layout_holds(example.spec, detect_objects(_mirror(example))) is False
    two = sample_example(np.random.default_rng(0), category="two_object")
    assert layout_holds(two.spec, detect_objects(two.images[64])) is None  # no place named


def test_toward_layout_is_positive_on_renders_and_negative_when_mirrored(placed):
    to_tensor = VaeImageProcessor().preprocess
    true = [toward_layout(e.spec, to_tensor(e.images[64])[0]) for e in placed]
    mirrored = [toward_layout(e.spec, to_tensor(_mirror(e))[0]) for e in placed]
    assert min(true) > 0.03 and np.mean(true) > 0.2
    assert max(mirrored) < -0.03 and np.mean(mirrored) < -0.2


def test_layout_diagnostic_reads_an_oracle_and_an_unconditional_model_apart(tiny_encoder):
    """A model that predicts the true render shifts the layout as far as the render does; one that ignores the
    prompt (the same prediction with and without it) shifts it by nothing."""
    class Oracle(torch.nn.Module):
        """x0-predicting: the clean image the diagnostic noised (noise is seeded by t, so it can undo it)."""
        config = SimpleNamespace(prediction_type="sample", sample_size=64)

        def __init__(self, blind: bool):
            super().__init__()
            self.blind = blind

        def forward(self, noisy, t, text, mask):
            a = scheduler.alphas_cumprod[int(t[0])]
            noise = torch.randn(noisy[: len(noisy) // 2].shape, generator=torch.Generator().manual_seed(int(t[0])))
            clean = (noisy[: len(noisy) // 2] - (1 - a).sqrt() * noise) / a.sqrt()
            return torch.cat([clean, clean if self.blind else torch.zeros_like(clean)])

    scheduler = training_scheduler("squaredcos_cap_v2", "sample")
    seeing = layout_diagnostic(Stage(Oracle(blind=False), scheduler), tiny_encoder, [900], per_category=12)
    render, row = seeing
    assert render["t"] == "render" and row["t"] == 900
    assert row["shift_absolute"] == pytest.approx(render["shift_absolute"], abs=0.02) and render["shift_absolute"] > 0.15
    assert row["position"] == render["position"] == 1.0 and row["count"] == 1.0 and row["count_no_prompt"] == 0.0
    (_, blind) = layout_diagnostic(Stage(Oracle(blind=True), scheduler), tiny_encoder, [900], per_category=12)
    assert blind["shift_absolute"] == blind["shift_relation"] == 0.0 and blind["position_no_prompt"] == 1.0


def test_position_features_name_every_cell():
    features = sinusoidal_positions_2d(8, 8)
    assert features.shape == (64, 20) and torch.cdist(features, features).add(torch.eye(64)).min() > 0.1
    coords = grid_coordinates(4, 8)
    assert coords.shape == (1, 2, 4, 8) and coords[0, 0, 0, 0] == -coords[0, 0, 0, -1] and coords[0, 1, 0, 0] < 0


def test_layout_target_is_the_foreground_on_the_grid():
    image = torch.full((1, 3, 8, 8), -0.5)
    image[:, 0, :2, :2] = 0.5  # a red-ish corner on a dark background
    target = layout_target(image, 4)
    assert target.shape == (1, 3, 4, 4) and target[0, 0, 0, 0] == 1.0 and target[0, :, 1:, 1:].abs().max() == 0


def test_the_layout_prior_learns_where_from_the_prompt_alone(tiny_encoder):
    """Trained by its own loss on renders of "... at the top" / "... at the bottom", the prior's map puts the
    foreground where the prompt says, without reading any picture: what a denoiser cannot learn at t = 999."""
    torch.manual_seed(0)
    unet = unet_from_preset("tiny-base", text_embed_dim=tiny_encoder.dim, layout_prior=True)
    rng = np.random.default_rng(0)
    places = [(c, side) for c in ("red", "blue") for side in ("top", "bottom")]
    prompts = [f"{c} {side}" for c, side in places]  # short: the tiny tokenizer spells words out letter by letter
    renders = {f"{c} {side}": [sample_example(rng, sizes=(16,), spec=parse_caption(f"a {c} circle at the {side}"),
                                              plain_background=1.0).images[16] for _ in range(8)] for c, side in places}
    batch = [p for p in prompts for _ in range(8)]
    images = torch.cat([VaeImageProcessor().preprocess(im) for p in prompts for im in renders[p]])
    text = tiny_encoder.encode(batch)
    optimizer = torch.optim.Adam(unet.layout.parameters(), lr=3e-3)
    for _ in range(150):
        conditioning = unet.encode_text(text.embeddings, text.mask)
        loss = layout_loss(conditioning.layout, images).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        probe = tiny_encoder.encode(prompts)
        maps = unet.encode_text(probe.embeddings, probe.mask).layout.abs().sum(1)  # (4, grid, grid)
    rows = (torch.arange(maps.shape[1]) + 0.5) / maps.shape[1]
    centre_y = (maps.sum(2) * rows).sum(1) / maps.sum((1, 2))
    assert centre_y[0] < 0.4 and centre_y[1] > 0.6 and centre_y[2] < 0.4 and centre_y[3] > 0.6, centre_y
