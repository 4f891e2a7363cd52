"""The default model shipped in the package: loads offline by name and turns a prompt into a 256x256 image."""

from __future__ import annotations

import PIL.Image

from imagen_demo import ImagenPipeline
from imagen_demo.cli import main
from imagen_demo.loading import SHIPPED_MODELS


def test_default_model_ships_small_and_in_safetensors():
    folder = SHIPPED_MODELS["default"]
    weights = list(folder.rglob("*.safetensors"))
    assert len(weights) == 2
    assert sum(f.stat().st_size for f in folder.rglob("*")) < 60e6  # 9.0M + 3.7M float32 parameters, card, record
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))


def test_default_model_generates_a_256_image_from_a_prompt():
    pipe = ImagenPipeline.from_pretrained("default")
    assert [stage.size for stage in pipe.stages] == [64, 256]
    out = pipe("a red circle above a blue square", seed=0, num_inference_steps=[2, 1], return_intermediates=True)
    assert out.images[0].size == (256, 256)
    assert out.stage_images[0][0].size == (64, 64)


def test_cli_uses_the_default_model_without_model_flag(tmp_path):
    out = tmp_path / "x.png"
    assert main(["generate", "a red circle above a blue square", "--steps", "2,1", "--seed", "1", "--out", str(out)]) == 0
    assert PIL.Image.open(out).size == (256, 256)

