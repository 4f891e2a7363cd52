"""The same seed and settings give the same images, bit for bit, as before the pipeline became a diffusers pipeline.

The hashes were recorded with the code of commit 12bd036 (before issue 25's refactor) on one thread: float kernels
round differently with other thread counts, CPU instruction sets and torch versions, so the test runs only where the
hashes were taken, and the shipped model's hashes only for the weights they were recorded with (new weights draw
other images). Each group starts from fresh text encoders, as when they were recorded: a prompt encoded in a batch can
differ in the last bits from the same prompt encoded alone, and the encoders cache every prompt.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from imagen_demo import ImagenPipeline, TextEncoder
from imagen_demo.core.loading import SHIPPED_MODELS
from imagen_demo.core.schedulers import swap_schedulers
from imagen_demo.prompting import english_rewrite
from tiny import build_tiny_pipeline

RECORDED_WITH = ("AVX2", "2.14.1")  # CPU capability, torch version
pytestmark = pytest.mark.skipif(
    (torch.backends.cpu.get_cpu_capability(), torch.__version__.split("+")[0]) != RECORDED_WITH,
    reason=f"the hashes were recorded on an {RECORDED_WITH[0]} CPU with torch {RECORDED_WITH[1]}",
)
PROMPTS = ["a red circle above a blue square", "two green stars"]
SHIPPED_WEIGHTS = {"unet_1": "60c0a650967c1433", "unet_2": "fa7c62dae1ca00f0"}  # sha256 of the weights hashed below


def weights_digest(component: str) -> str:
    path = SHIPPED_MODELS["default"] / component / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


shipped_weights = pytest.mark.skipif(
    {name: weights_digest(name) for name in SHIPPED_WEIGHTS} != SHIPPED_WEIGHTS,
    reason="the shipped weights changed since these images were recorded",
)


def digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def digests(out) -> list[str]:
    return [digest(out.images)] + [digest(images) for images in out.stage_images]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_tiny_cascade_draws_what_it_drew(one_thread, tiny_t5_dir):
    pipe = build_tiny_pipeline(TextEncoder.from_pretrained(tiny_t5_dir, max_length=16))
    recorded = {
        None: ["938ed9e0839e123a", "4ff95fa29ccd2174", "938ed9e0839e123a"],
        "ddim": ["a63ad1020b582d7b", "3c78dbb8ddc40289", "a63ad1020b582d7b"],
        "ddpm": ["938ed9e0839e123a", "4ff95fa29ccd2174", "938ed9e0839e123a"],
        "dpm++": ["a5c1baa782bfc422", "d43ce332cf84db6d", "a5c1baa782bfc422"],
        "unipc": ["57e21970378d9ef6", "fd58d7b355ec5db2", "57e21970378d9ef6"],
    }
    for scheduler, expected in recorded.items():
        sampler = pipe if scheduler is None else swap_schedulers(pipe, scheduler)
        out = sampler(PROMPTS, seed=7, output_type="np", return_intermediates=True)
        assert digests(out) == expected, scheduler
    out = pipe(PROMPTS, seed=7, output_type="np", guidance_scale=[1.0, 2.0], thresholding="static", negative_prompt="blue")
    assert digest(out.images) == "f939a0c128fdc9c6"
    out = pipe(PROMPTS, seed=7, output_type="np", thresholding="none", noise_aug_level=0.5, num_images_per_prompt=2)
    assert digest(out.images) == "f6ddfdd417109bb1"
    previews = []

    def every_second_step_and_the_last(pipe, step, timestep, tensors):
        wanted = (step + 1) % 2 == 0 or step + 1 == pipe.stage_num_timesteps
        previews.append(digest(tensors["pred_original_sample"].numpy()) if wanted else None)
        return {}

    pipe(PROMPTS, seed=7, output_type="np", callback_on_step_end=every_second_step_and_the_last,
         callback_on_step_end_tensor_inputs=["pred_original_sample"])
    assert previews == [None, "29162de7f47bcca4", "dac572a895979119", None, "ff46f123bec79ee9", "6385d6de64dc83ee"]


@shipped_weights
def test_the_shipped_model_draws_what_it_drew(one_thread):
    pipe = ImagenPipeline.from_pretrained("default")
    prompts = ["a red circle above a blue square", english_rewrite(pipe, "红色圆形在蓝色正方形的左边")]
    out = pipe(prompts, seed=3, num_inference_steps=[2, 1], output_type="np", return_intermediates=True)
    assert digests(out) == ["279cc23c62d3ab6b", "d9508c452de78f47", "279cc23c62d3ab6b"]
    image = pipe("a green star", seed=11, num_inference_steps=[2, 1]).images[0]
    assert digest(np.asarray(image)) == "f83d421d7582ffa9"


@shipped_weights
@pytest.mark.parametrize("scheduler,expected", [
    ("ddim", "349e123f46bbc770"), ("ddpm", "0090deceb756f71a"), ("unipc", "26f8baa096de1e01"),
])
def test_the_shipped_model_draws_what_it_drew_with_another_sampler(one_thread, scheduler, expected):
    pipe = swap_schedulers(ImagenPipeline.from_pretrained("default"), scheduler)
    out = pipe("a red circle above a blue square", seed=3, num_inference_steps=[2, 1], output_type="np")
    assert digest(out.images) == expected


@shipped_weights
def test_the_shipped_model_draws_what_it_drew_guided_and_clipped(one_thread):
    pipe = ImagenPipeline.from_pretrained("default")
    out = pipe("two green stars", seed=5, num_inference_steps=[2, 1], output_type="np", thresholding=["static", "none"],
               guidance_scale=[2.0, 1.5], noise_aug_level=0.3)
    assert digest(out.images) == "f43d1b4b0316817c"
