"""The shared model interface: entry parsing, Imagen and diffusers backends, one load per source."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imagen_demo.loading import WeightsNotFoundError
from imagen_demo.registry import DiffusersModel, ImagenModel, ModelRegistry, ModelSpec, parse_model_list, slug
from tiny import build_tiny_stable_diffusion


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_entries_parse_with_aliases_per_stage_values_and_continuations():
    specs = parse_model_list("default, default@steps=10,guidance=3/2 ,./x@scheduler=ddim")
    assert [s.name for s in specs] == ["default", "default@steps=10,guidance=3/2", "./x@scheduler=ddim"]
    assert specs[1].source == "default"
    assert specs[1].typed_settings({"num_inference_steps": int, "guidance_scale": float}) == {
        "num_inference_steps": 10, "guidance_scale": [3.0, 2.0]}
    assert specs[2].settings == {"scheduler": "ddim"}
    assert slug("default@steps=10,guidance=3/2") == "default_steps_10_guidance_3_2"


@pytest.mark.parametrize("text, message", [
    ("", "no models"), ("@steps=3", "names no model"), ("default@steps", "key=value"),
    ("default@stpes=3", "unknown setting 'stpes'"), ("default,default", "distinct"),
])
def test_bad_entries_are_refused_with_a_sentence(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_list(text)


def test_imagen_entries_share_one_pipeline_and_match_direct_calls(tiny_pipe):
    registry = ModelRegistry("cpu")
    registry.add("tiny", tiny_pipe)
    fast, default = registry.get("tiny@steps=2"), registry.get("tiny")
    assert isinstance(fast, ImagenModel) and fast.pipeline is default.pipeline is tiny_pipe
    images = fast.generate(["a red circle", "two green stars"], [3, 4])
    direct = tiny_pipe(["a red circle", "two green stars"], seed=[3, 4], num_inference_steps=2).images
    assert [im.size for im in images] == [(32, 32)] * 2
    for a, b in zip(images, direct):
        np.testing.assert_array_equal(pixels(a), pixels(b))
    steps = []
    fast.generate(["two green stars"], [4], progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="one seed per prompt"):
        fast.generate(["a"], [1, 2])
    with pytest.raises(ValueError, match="steps must be a whole number"):
        registry.get("tiny@steps=many")


def test_imagen_folder_loads_by_path_and_super_resolves(tiny_pipe_dir):
    model = ModelRegistry("cpu").get(f"{tiny_pipe_dir}@steps=2")
    assert isinstance(model, ImagenModel) and model.sizes == [16, 32]
    assert model.describe()["settings"] == {"num_inference_steps": 2}
    low = model.generate(["a red circle"], [0])[0].resize((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # diffusers' deprecated [-1, 1] tensor input: normalised twice later
        assert model.super_resolve(["a red circle"], [low], [0])[0].size == (32, 32)


def test_diffusers_pipeline_folder_is_a_model_too(tmp_path):
    folder = build_tiny_stable_diffusion(tmp_path)
    registry = ModelRegistry("cpu")
    model = registry.get(f"{folder}@steps=2,guidance=2")
    assert isinstance(model, DiffusersModel) and model.describe()["pipeline_class"] == "StableDiffusionPipeline"
    a = model.generate(["a red circle", "two cats"], [0, 1])
    b = model.generate(["a red circle"], [0])
    assert a[0].size == (16, 16)
    np.testing.assert_array_equal(pixels(a[0]), pixels(b[0]))  # a seed gives the same image in any batch
    other = registry.get(f"{folder}@steps=2,scheduler=dpm++")
    assert other.pipeline is model.pipeline  # weights loaded once
    assert not np.array_equal(pixels(other.generate(["a red circle"], [0])[0]), pixels(a[0]))
    assert type(model.pipeline.scheduler).__name__ == "DDIMScheduler"  # the shared pipeline is untouched
    with pytest.raises(ValueError, match="not supported"):
        registry.get(f"{folder}@noise_aug=0.2")


def test_missing_models_name_themselves(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nowhere"):
        ModelRegistry("cpu").get(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFoundError, match="someone/not-cached"):
        ModelRegistry("cpu").get("someone/not-cached")
    assert ModelSpec.parse("default").settings == {}
