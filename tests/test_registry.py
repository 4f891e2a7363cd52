"""The shared model interface: entry parsing, one path for Imagen and any other diffusers pipeline, one load per source."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imagen_demo.core.loading import WeightsNotFoundError
from imagen_demo.prompting import english_rewrite
from imagen_demo.registry import ModelRegistry, ModelSpec, parse_model_list, slug
from tiny import build_tiny_stable_diffusion


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_entries_parse_with_aliases_per_stage_values_and_continuations(tiny_pipe):
    specs = parse_model_list("default, default@steps=10,guidance=3/2 ,./x@scheduler=ddim")
    assert [s.name for s in specs] == ["default", "default@steps=10,guidance=3/2", "./x@scheduler=ddim"]
    assert specs[1].source == "default"
    assert specs[1].typed_settings(tiny_pipe) == {"num_inference_steps": 10, "guidance_scale": [3.0, 2.0]}
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
    assert fast.pipeline is default.pipeline is tiny_pipe
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
    assert model.sizes == [16, 32] and model.describe()["pipeline_class"] == "ImagenPipeline"
    assert model.describe()["settings"] == {"num_inference_steps": 2}
    low = model.generate(["a red circle"], [0])[0].resize((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # diffusers' deprecated [-1, 1] tensor input: normalised twice later
        assert model.super_resolve(["a red circle"], [low], [0])[0].size == (32, 32)


def test_diffusers_pipeline_folder_is_a_model_too(tmp_path):
    folder = build_tiny_stable_diffusion(tmp_path)
    registry = ModelRegistry("cpu")
    model = registry.get(f"{folder}@steps=2,guidance=2")
    assert model.describe()["pipeline_class"] == "StableDiffusionPipeline" and model.sizes == []
    a = model.generate(["a red circle", "two cats"], [0, 1])
    b = model.generate(["a red circle"], [0])
    assert a[0].size == (16, 16)
    np.testing.assert_array_equal(pixels(a[0]), pixels(b[0]))  # a seed gives the same image in any batch
    other = registry.get(f"{folder}@steps=2,scheduler=EulerDiscreteScheduler")  # no thresholding: not Imagen's rule
    assert other.pipeline.unet is model.pipeline.unet and list(registry.load_seconds) == [str(folder)]  # loaded once
    assert type(other.pipeline.scheduler).__name__ == "EulerDiscreteScheduler"
    assert not np.array_equal(pixels(other.generate(["a red circle"], [0])[0]), pixels(a[0]))
    assert type(model.pipeline.scheduler).__name__ == "DDIMScheduler"  # the shared pipeline is untouched
    steps = []
    other.generate(["a red circle"], [0], progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]  # the same progress as an Imagen cascade's, from callback_on_step_end
    with pytest.raises(ValueError, match="'noise_aug_level' is not supported by StableDiffusionPipeline"):
        registry.get(f"{folder}@noise_aug=0.2")


def test_every_model_gets_the_prompt_its_text_encoder_can_read(tiny_pipe, monkeypatch):
    registry = ModelRegistry("cpu")
    registry.add("tiny", tiny_pipe)
    model = registry.get("tiny@steps=1")
    seen = []
    call = type(tiny_pipe).__call__
    monkeypatch.setattr(type(tiny_pipe), "__call__", lambda pipe, prompt, **kw: seen.append(prompt) or call(pipe, prompt, **kw))
    model.generate(["一幅画着小的菱形的图", "红色圆形在蓝色正方形的左边"], [0, 1])  # the tiny T5 reads only the second
    assert seen == [[english_rewrite(tiny_pipe, "一幅画着小的菱形的图"), "红色圆形在蓝色正方形的左边"]]


def test_missing_models_name_themselves(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nowhere"):
        ModelRegistry("cpu").get(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFoundError, match="someone/not-cached"):
        ModelRegistry("cpu").get("someone/not-cached")
    assert ModelSpec.parse("default").settings == {}
