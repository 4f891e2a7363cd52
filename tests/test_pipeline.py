"""The cascade end to end on tiny random models: shapes, guidance, thresholding, noise augmentation,
determinism, save/load through diffusers, schedulers, callbacks and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from imagen_demo import ImagenPipeline, TextEmbeddings
from imagen_demo.core.loading import CorruptWeightsError, WeightsNotFoundError
from imagen_demo.core.low_res import upsample
from imagen_demo.core.presets import unet_from_preset
from imagen_demo.core.sampling import Stage, StageSettings, guided_prediction, predicted_original, sample_stage
from imagen_demo.core.schedulers import SCHEDULERS, sampling_scheduler, swap_schedulers, training_scheduler
from imagen_demo.progress import progress_callback
from tiny import build_tiny_pipeline, randomize_zero_inits

PROMPTS = ["a red circle above a blue square", "two green stars"]


def test_every_stage_has_its_size_and_every_output_type(tiny_pipe):
    out = tiny_pipe(PROMPTS, num_images_per_prompt=2, seed=0, output_type="np", return_intermediates=True)
    assert out.images.shape == (4, 32, 32, 3)
    assert [im.shape for im in out.stage_images] == [(4, 16, 16, 3), (4, 32, 32, 3)]
    assert out.images.min() >= 0 and out.images.max() <= 1 and out.images.std() > 0
    assert out.seeds == [0, 1, 2, 3]
    pil = tiny_pipe(PROMPTS[0], seed=0).images
    assert len(pil) == 1 and isinstance(pil[0], PIL.Image.Image) and pil[0].size == (32, 32)
    pt = tiny_pipe(PROMPTS[0], seed=0, output_type="pt").images
    assert pt.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(pt[0].permute(1, 2, 0).numpy(), np.asarray(pil[0]) / 255, atol=1 / 255 + 1e-6)


def test_generate_image_convenience(tiny_pipe):
    image = tiny_pipe.generate_image("a red circle", seed=5)
    assert isinstance(image, PIL.Image.Image) and image.size == (32, 32)


class _Spy(torch.nn.Module):
    """Wraps a U-Net and records every forward's inputs."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    @property
    def config(self):
        return self.unet.config

    @property
    def device(self):  # a pipeline component's device, as diffusers reads it
        return self.unet.device

    def encode_text(self, *args):
        return self.unet.encode_text(*args)

    def forward(self, *args):
        self.calls.append(args)
        return self.unet(*args)


def _text(pipe, prompts, negatives=None):
    cond = pipe.prompt_encoder.encode(prompts)
    return cond if negatives is None else TextEmbeddings.cat([cond, pipe.prompt_encoder.encode(negatives)])


def test_classifier_free_guidance_is_one_batched_forward_with_the_paper_formula(tiny_pipe):
    stage = tiny_pipe.stages[0]
    spy = _Spy(stage.unet)
    stage.unet = spy
    x, t = torch.randn(2, 3, 16, 16), torch.tensor(500)
    eps_c = spy.unet(x, t, *vars(_text(tiny_pipe, PROMPTS)).values())
    eps_u = spy.unet(x, t, *vars(_text(tiny_pipe, ["", ""])).values())
    assert not torch.allclose(eps_c, eps_u), "text must change the prediction"

    guided = guided_prediction(spy, x, t, spy.encode_text(*vars(_text(tiny_pipe, PROMPTS, ["", ""])).values()), guidance_scale=4.0)
    assert len(spy.calls) == 1 and spy.calls[0][0].shape[0] == 4, "cond + uncond must share one forward"
    torch.testing.assert_close(guided, eps_u + 4.0 * (eps_c - eps_u), rtol=1e-4, atol=1e-5)

    spy.calls.clear()
    cond_only = guided_prediction(spy, x, t, spy.encode_text(*vars(_text(tiny_pipe, PROMPTS)).values()), guidance_scale=1.0)
    assert len(spy.calls) == 1 and spy.calls[0][0].shape[0] == 2, "guidance 1 must skip the uncond pass"
    torch.testing.assert_close(cond_only, eps_c)


def test_negative_prompt_replaces_the_null_text(tiny_pipe):
    plain = tiny_pipe(PROMPTS[0], seed=1, output_type="pt").images
    same = tiny_pipe(PROMPTS[0], negative_prompt="", seed=1, output_type="pt").images
    negative = tiny_pipe(PROMPTS[0], negative_prompt="two green stars", seed=1, output_type="pt").images
    torch.testing.assert_close(plain, same)
    assert not torch.allclose(plain, negative)


def test_guidance_one_means_no_unconditional_pass(tiny_pipe):
    spies = [_Spy(stage.unet) for stage in tiny_pipe.stages]
    tiny_pipe.unet_1, tiny_pipe.unet_2 = spies
    tiny_pipe(PROMPTS, seed=0, guidance_scale=[1.0, 2.0], num_inference_steps=2)
    assert [c[0].shape[0] for c in spies[0].calls] == [2, 2]
    assert [c[0].shape[0] for c in spies[1].calls] == [4, 4]


def test_dynamic_thresholding_matches_the_paper_formula():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 3, 8, 8, generator=gen) * torch.tensor([0.2, 2.0, 5.0]).view(3, 1, 1, 1)
    scheduler = sampling_scheduler(training_scheduler("squaredcos_cap_v2", "epsilon"), "ddim", "epsilon", "dynamic", 0.9)
    got = scheduler._threshold_sample(x0.clone())
    for i in range(3):
        s = max(np.percentile(x0[i].abs().numpy(), 90), 1.0)  # s = max(percentile(|x0|, p), 1)
        expected = np.clip(x0[i].numpy(), -s, s) / s
        np.testing.assert_allclose(got[i].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert x0[0].abs().max() < 1 and torch.equal(got[0], x0[0]), "a sample inside [-1, 1] is left alone"

    static = sampling_scheduler(training_scheduler("linear", "epsilon"), "ddpm", "epsilon", "static")._threshold_sample(x0.clone())
    torch.testing.assert_close(static, x0.clamp(-1, 1))


@pytest.mark.parametrize("mode,expect_calls", [("dynamic", True), ("static", True), ("none", False)])
def test_sampling_uses_the_schedulers_thresholding(tiny_pipe, monkeypatch, mode, expect_calls):
    seen = []
    original = SCHEDULERS["ddim"]._threshold_sample
    monkeypatch.setattr(SCHEDULERS["ddim"], "_threshold_sample", lambda self, x: seen.append(self.config.sample_max_value) or original(self, x))
    swap_schedulers(tiny_pipe, "ddim")(PROMPTS[0], seed=0, thresholding=mode, num_inference_steps=2)
    assert bool(seen) == expect_calls
    if mode == "static":
        assert set(seen) == {1.0}
    if mode == "dynamic":
        assert set(seen) == {math.inf}, "the paper's s = max(p-th percentile, 1) has no upper bound"


def test_noise_augmentation_level_reaches_the_super_resolution_unet(tiny_pipe):
    spy = tiny_pipe.unet_2 = _Spy(tiny_pipe.unet_2)
    out = tiny_pipe(PROMPTS[0], seed=0, noise_aug_level=0.0, guidance_scale=1.0, return_intermediates=True, output_type="pt")
    base = out.stage_images[0] * 2 - 1
    low_res, level = spy.calls[0][4], spy.calls[0][5]
    assert torch.all(level == 0.0)
    torch.testing.assert_close(low_res, upsample(base, 32), atol=2e-3, rtol=0), "level 0 = clean upsampled base image"

    spy.calls.clear()
    tiny_pipe(PROMPTS[0], seed=0, noise_aug_level=0.35, guidance_scale=1.0)
    noisy, level = spy.calls[0][4], spy.calls[0][5]
    assert torch.allclose(level, torch.tensor(0.35))
    assert (noisy - low_res).abs().mean() > 0.05, "a positive level must corrupt the low-res input"
    assert all(torch.equal(call[4], noisy) for call in spy.calls), "the augmented image is fixed across steps"


def test_seed_determinism_and_batch_independence(tiny_pipe):
    for scheduler in ("ddpm", "dpm++"):  # ddpm draws noise at every step, dpm++ is deterministic
        pipe = swap_schedulers(tiny_pipe, scheduler)
        alone = pipe([PROMPTS[0]], seed=[7], output_type="pt").images
        again = pipe([PROMPTS[0]], seed=[7], output_type="pt").images
        crowd = pipe(["a photo of a cat", PROMPTS[0], PROMPTS[1]], seed=[1, 7, 9], output_type="pt").images
        other = pipe([PROMPTS[0]], seed=[8], output_type="pt").images
        assert torch.equal(alone, again)
        torch.testing.assert_close(alone[0], crowd[1], atol=1e-5, rtol=0)
        assert (alone - other).abs().max() > 0.05


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_drives_every_stage_and_reload_is_identical(tiny_pipe, tiny_pipe_dir, scheduler):
    loaded = swap_schedulers(ImagenPipeline.from_pretrained(tiny_pipe_dir), scheduler)
    a = swap_schedulers(tiny_pipe, scheduler)(PROMPTS, seed=3, output_type="pt").images
    b = loaded(PROMPTS, seed=3, output_type="pt").images
    assert a.shape == (2, 3, 32, 32) and torch.isfinite(a).all()
    assert torch.equal(a, b)


def test_save_by_reference_and_swap_a_scheduler(own_encoder, tiny_t5_dir, tmp_path):
    pipe = build_tiny_pipeline(own_encoder, store_text_encoder=False)  # the encoder named by its folder, not stored
    pipe.scheduler_2 = DPMSolverMultistepScheduler.from_config(pipe.scheduler_2.config)  # diffusers' own swap
    pipe.save_pretrained(tmp_path / "ref")
    assert not (tmp_path / "ref" / "text_encoder").exists() and not (tmp_path / "ref" / "tokenizer").exists()
    loaded = ImagenPipeline.from_pretrained(tmp_path / "ref")
    assert loaded.prompt_encoder.name_or_path == str(tiny_t5_dir) and loaded.prompt_encoder.max_length == 16
    assert type(loaded.scheduler_2).__name__ == "DPMSolverMultistepScheduler"
    assert loaded.scheduler_2.config.beta_schedule == "linear", "swapping keeps the trained noise schedule"
    torch.testing.assert_close(pipe(PROMPTS[0], seed=2, output_type="pt").images, loaded(PROMPTS[0], seed=2, output_type="pt").images)
    pipe.save_pretrained(tmp_path / "ref")  # overwriting an existing folder works and leaves no debris
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("scheduler_class, options", [
    (DDIMScheduler, {}),  # alpha-bar: timesteps index alphas_cumprod
    (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),  # sigmas first, timesteps rounded from them
    (EulerDiscreteScheduler, {}),  # x = x0 + sigma * eps, and the model sees it scaled
], ids=["ddim", "dpm++-karras", "euler"])
def test_the_preview_recovers_a_known_x0(scheduler_class, options, prediction_type):
    scheduler = scheduler_class.from_config(training_scheduler("linear", prediction_type).config, **options)
    scheduler.set_timesteps(10)
    step = 5  # t = 511 under Karras sigmas: unique, so add_noise finds its sigma
    t = scheduler.timesteps[step]
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 8, 8, generator=generator), torch.randn(2, 3, 8, 8, generator=generator)
    # The scheduler's own forward process and input scaling, nothing of ours: what the model sees is a x0 + s eps.
    seen = lambda x0, eps: scheduler.scale_model_input(scheduler.add_noise(x0, eps, t.expand(2)), t)  # noqa: E731
    a, s = seen(torch.ones(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)), seen(torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1))
    model_output = eps if prediction_type == "epsilon" else a * eps - s * x0
    preview = predicted_original(scheduler, step, t, seen(x0, eps), model_output, prediction_type)
    torch.testing.assert_close(preview, x0, atol=1e-4, rtol=1e-4)


def test_progress_events_report_every_step_and_previews(tiny_pipe):
    events = []
    tiny_pipe(PROMPTS, seed=0, num_inference_steps=[3, 2], **progress_callback(events.append, preview_every=2))
    assert [(e.stage, e.step, e.num_steps) for e in events] == [(0, 1, 3), (0, 2, 3), (0, 3, 3), (1, 1, 2), (1, 2, 2)]
    assert [e.done for e in events] == [1, 2, 3, 4, 5] and {e.total for e in events} == {5}
    previews = [(e.stage, e.step, tuple(e.preview.shape)) for e in events if e.preview is not None]
    assert previews == [(0, 2, (2, 3, 16, 16)), (0, 3, (2, 3, 16, 16)), (1, 2, (2, 3, 32, 32))]


def test_super_resolve_a_given_image(tiny_pipe):
    low = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    events = []
    out = tiny_pipe("a red circle", image=low, seed=0, **progress_callback(events.append))
    assert out.images[0].size == (32, 32)
    assert {e.stage for e in events} == {1}, "a 16x16 image starts the cascade at the SR stage"
    with pytest.raises(ValueError, match="square with side in"):
        tiny_pipe("a red circle", image=PIL.Image.new("RGB", (20, 20)))


def test_a_tensor_image_in_0_1_is_read_like_the_same_pil_image(tiny_pipe):
    """diffusers' convention: image tensors are in [0, 1]; one must not be read as [-1, 1] as it is."""
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    from_pil = tiny_pipe("a red circle", image=PIL.Image.fromarray(pixels), seed=0, output_type="np").images
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    from_tensor = tiny_pipe("a red circle", image=tensor, seed=0, output_type="np").images
    np.testing.assert_allclose(from_tensor, from_pil, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(prompt=[]), "no prompt"),
        (dict(prompt="   "), "non-empty string"),
        (dict(prompt="x", num_inference_steps=0), "num_inference_steps"),
        (dict(prompt="x", num_inference_steps=-3), "num_inference_steps"),
        (dict(prompt="x", guidance_scale=float("nan")), "guidance_scale"),
        (dict(prompt="x", guidance_scale=[1.0, 2.0, 3.0]), "3 values but the pipeline has 2 stages"),
        (dict(prompt="x", noise_aug_level=1.5), "noise_aug_level"),
        (dict(prompt="x", num_images_per_prompt=0), "num_images_per_prompt"),
        (dict(prompt="x", seed=-1), "seeds"),
        (dict(prompt="x", thresholding="sometimes"), "thresholding"),
        (dict(prompt="x", thresholding=["dynamic"]), "1 values but the pipeline has 2 stages"),
        (dict(prompt="x", dynamic_thresholding_percentile=1.5), "percentile"),
        (dict(prompt="x", output_type="gif"), "output_type"),
        (dict(prompt="x", callback_on_step_end_tensor_inputs=["prompt_embeds"]), "must be among"),
    ],
)
def test_bad_input_is_a_clear_error(tiny_pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_pipe(**kwargs)


def test_missing_and_corrupt_weights_are_clear_errors(tiny_pipe, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE=0"):
        ImagenPipeline.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(WeightsNotFoundError, match="not available on this machine"):
        ImagenPipeline.from_pretrained("someone/not-a-cached-model")
    tiny_pipe.save_pretrained(tmp_path / "p")
    weights = tmp_path / "p" / "unet_2" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptWeightsError, match="corrupt or truncated"):
        ImagenPipeline.from_pretrained(tmp_path / "p")
    weights.unlink()
    with pytest.raises(WeightsNotFoundError, match="U-Net weights"):
        ImagenPipeline.from_pretrained(tmp_path / "p")


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
@pytest.mark.parametrize("thresholding", ["dynamic", "static", "none"])
def test_a_nan_in_one_middle_step_is_still_caught(tiny_pipe, monkeypatch, scheduler, thresholding):
    """NaN is checked once after the loop, so a NaN from any single step must survive to the end."""
    calls = []

    def nan_at_second_call(*args, **kwargs):
        calls.append(1)
        out = guided_prediction(*args, **kwargs)
        return out.fill_(float("nan")) if len(calls) == 2 else out

    monkeypatch.setattr("imagen_demo.core.sampling.guided_prediction", nan_at_second_call)
    with pytest.raises(FloatingPointError, match="stage 1: NaN"):
        swap_schedulers(tiny_pipe, scheduler)("a red circle", seed=0, num_inference_steps=4, thresholding=thresholding)


def test_nan_weights_stop_with_a_clear_error(tiny_pipe):
    with torch.no_grad():
        tiny_pipe.stages[0].unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="stage 1: NaN"):
        tiny_pipe("a red circle", seed=0)


class _CleanIsZero(torch.nn.Module):
    """A stand-in U-Net whose every prediction means "x0 = 0": v = sqrt(a) x / sqrt(1 - a) at the step's alpha-bar."""

    def __init__(self, unet, alphas_cumprod):
        super().__init__()
        self.unet, self.alphas_cumprod = unet, alphas_cumprod

    @property
    def config(self):
        return self.unet.config

    def encode_text(self, *args):
        return self.unet.encode_text(*args)

    def forward(self, x, t, *rest):
        if self.config.prediction_type == "sample":
            return torch.zeros_like(x)
        a = self.alphas_cumprod[int(t)]
        return a.sqrt() * x / (1 - a).sqrt()


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("residual", [False, True])
def test_a_residual_super_resolution_stage_adds_its_output_to_the_upsampled_image(tiny_pipe, residual, prediction_type):
    """Predicting x0 = 0 gives a grey image from a plain SR stage and exactly the bicubic upsampling from a residual
    one, whatever the noise-augmentation level: the residual is added to the clean upsampled image, unthresholded."""
    unet = unet_from_preset("tiny-sr", low_res_residual=residual, prediction_type=prediction_type, text_embed_dim=tiny_pipe.prompt_encoder.dim)
    scheduler = training_scheduler("linear", prediction_type)
    stage = Stage(_CleanIsZero(unet, scheduler.alphas_cumprod), scheduler)
    low_res = torch.rand(2, 3, 16, 16) * 2 - 1
    settings = StageSettings(guidance_scale=1.0, num_inference_steps=4, scheduler="dpm++", noise_aug_level=0.3)
    out = sample_stage(stage, settings, _text(tiny_pipe, PROMPTS), [torch.Generator().manual_seed(i) for i in range(2)], low_res)
    expected = upsample(low_res, 32) if residual else torch.zeros_like(out)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="low_res_residual needs a super-resolution U-Net"):
        unet_from_preset("tiny-base", low_res_residual=True)


# ----------------------------------------------------------------------------------- a diffusers pipeline
def test_diffusers_loads_a_saved_folder_through_the_pipeline_code_it_carries(tiny_pipe, tiny_pipe_dir):
    assert (tiny_pipe_dir / "pipeline.py").is_file()
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # diffusers runs a folder's code only when told
        DiffusionPipeline.from_pretrained(tiny_pipe_dir, custom_pipeline="pipeline")
    pipe = DiffusionPipeline.from_pretrained(tiny_pipe_dir, custom_pipeline="pipeline", trust_remote_code=True)
    assert type(pipe) is ImagenPipeline
    assert sorted(name for name, c in pipe.components.items() if c is not None) == [
        "scheduler_1", "scheduler_2", "text_encoder", "tokenizer", "unet_1", "unet_2"]
    pipe.set_progress_bar_config(disable=True)
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    torch.testing.assert_close(pipe(PROMPTS, seed=3, output_type="pt").images, tiny_pipe(PROMPTS, seed=3, output_type="pt").images)
    copy = ImagenPipeline.from_pipe(pipe, scheduler_1=DDIMScheduler.from_config(pipe.scheduler_1.config))
    assert copy.unet_1 is pipe.unet_1 and copy.defaults == pipe.defaults and type(pipe.scheduler_1).__name__ == "DDPMScheduler"


def test_the_shipped_folder_loads_through_diffusers_by_name_of_its_encoder():
    from imagen_demo.core.loading import SHIPPED_MODELS

    pipe = DiffusionPipeline.from_pretrained(SHIPPED_MODELS["default"], custom_pipeline="pipeline", trust_remote_code=True)
    assert type(pipe) is ImagenPipeline and pipe.config.text_encoder_name_or_path == "minilm"
    assert [type(s.scheduler).__name__ for s in pipe.stages] == ["DPMSolverMultistepScheduler"] * 2


def test_model_cpu_offload_hooks_every_model_and_changes_no_image(own_encoder):
    pipe = build_tiny_pipeline(own_encoder)
    expected = pipe(PROMPTS, seed=1, output_type="pt").images
    pipe.enable_model_cpu_offload(device="cpu")  # the CPU stands in for the accelerator: the hooks and their order
    moved = []
    hook = pipe.unet_2._hf_hook
    pre_forward = hook.pre_forward
    hook.pre_forward = lambda module, *args, **kwargs: moved.append(module) or pre_forward(module, *args, **kwargs)
    torch.testing.assert_close(pipe(PROMPTS, seed=1, output_type="pt").images, expected)
    assert moved and moved[0] is pipe.unet_2, "encode_text, the stage's first call, must move its U-Net as forward does"


def test_callback_on_step_end_works_as_in_diffusers_pipelines(tiny_pipe):
    seen = []

    def record(pipe, step, timestep, tensors):
        seen.append((pipe.stage_index, step, int(timestep), sorted(tensors), pipe.num_timesteps))
        return {}

    tiny_pipe(PROMPTS[0], seed=0, num_inference_steps=[2, 1], callback_on_step_end=record)
    assert [(stage, step) for stage, step, *_ in seen] == [(0, 0), (0, 1), (1, 0)]
    assert {tuple(names) for *_, names, _ in seen} == {("latents",)} and {total for *_, total in seen} == {3}

    def zero_the_base(pipe, step, timestep, tensors):  # what a callback hands back as "latents" is sampled on
        return {"latents": torch.zeros_like(tensors["latents"])} if pipe.stage_index == 0 else {}

    out = tiny_pipe(PROMPTS[0], seed=0, num_inference_steps=[2, 1], callback_on_step_end=zero_the_base,
                    return_intermediates=True, output_type="pt")
    assert torch.all(out.stage_images[0] == 0.5)  # x = 0 in [-1, 1] is grey in [0, 1]


def test_saved_defaults_are_typed_and_read_and_a_misspelt_one_is_refused(tiny_pipe, tiny_pipe_dir):
    loaded = ImagenPipeline.from_pretrained(tiny_pipe_dir)
    assert loaded.defaults == tiny_pipe.defaults
    assert (loaded.defaults.guidance_scale, loaded.defaults.num_inference_steps, loaded.defaults.noise_aug_level) == (3.0, 3, 0.2)
    with pytest.raises(ValueError, match="unknown sampling defaults \\['guidence'\\]"):
        ImagenPipeline.from_pipe(tiny_pipe, sampling_defaults={"guidence": 3.0})
    # Every default is read: a call that leaves them all out samples as one that gives each.
    tiny_pipe.defaults = type(tiny_pipe.defaults)(guidance_scale=[2.0, 1.0], num_inference_steps=[2, 1], noise_aug_level=0.0,
                                                 thresholding=["static", "none"], dynamic_thresholding_percentile=0.9)
    stages = []
    same = tiny_pipe(PROMPTS[0], seed=0, output_type="pt",
                     callback_on_step_end=lambda pipe, step, t, tensors: stages.append(pipe.stage_index) or {}).images
    assert stages == [0, 0, 1]
    given = tiny_pipe(PROMPTS[0], seed=0, guidance_scale=[2.0, 1.0], num_inference_steps=[2, 1], noise_aug_level=0.0,
                      thresholding=["static", "none"], output_type="pt").images
    assert torch.equal(same, given)


def _residual_cascade(encoder):
    torch.manual_seed(0)
    base = randomize_zero_inits(unet_from_preset("tiny-base", text_embed_dim=encoder.dim))
    sr = randomize_zero_inits(unet_from_preset("tiny-sr", text_embed_dim=encoder.dim, low_res_residual=True))
    return ImagenPipeline.from_stages(encoder, [Stage(base, training_scheduler("squaredcos_cap_v2", "epsilon")),
                                                Stage(sr, training_scheduler("linear", "epsilon"))],
                                      {"num_inference_steps": 2}, store_text_encoder=True)


def test_a_setting_a_stage_cannot_use_is_refused_where_it_is_given(own_encoder):
    pipe = _residual_cascade(own_encoder)
    pipe("a red circle", seed=0)  # by default the residual stage is not thresholded
    pipe("a red circle", seed=0, thresholding=["static", "none"])
    with pytest.raises(ValueError, match="stage 2: thresholding 'dynamic' cannot apply .* residual.*'none'"):
        pipe("a red circle", seed=0, thresholding="dynamic")
    with pytest.raises(ValueError, match="stage 2: thresholding 'static'"):
        pipe.defaults = type(pipe.defaults)(thresholding="static")
    with pytest.raises(ValueError, match="percentile is for dynamic thresholding"):
        pipe("a red circle", seed=0, thresholding=["static", "none"], dynamic_thresholding_percentile=0.9)
    base_only = ImagenPipeline.from_stages(pipe.prompt_encoder, pipe.stages[:1], store_text_encoder=True)
    with pytest.raises(ValueError, match="noise_aug_level is for super-resolution stages"):
        base_only("a red circle", seed=0, num_inference_steps=1, noise_aug_level=0.3)


def test_samplers_by_name_and_thresholding_only_where_a_stage_thresholds(tiny_pipe):
    with pytest.raises(ValueError, match="unknown scheduler 'euler-magic'"):
        swap_schedulers(tiny_pipe, "euler-magic")
    with pytest.raises(ValueError, match="got 3 schedulers for the 2"):
        swap_schedulers(tiny_pipe, ["ddim"] * 3)
    euler = swap_schedulers(tiny_pipe, "EulerDiscreteScheduler")
    with pytest.raises(ValueError, match="EulerDiscreteScheduler does not implement thresholding"):
        euler("a red circle", seed=0, num_inference_steps=2)
    out = euler("a red circle", seed=0, num_inference_steps=2, thresholding="none", output_type="pt").images
    assert torch.isfinite(out).all()


def test_the_core_imports_nothing_of_the_shapes_world_nor_of_the_applications(tmp_path):
    """Importing and running the pipeline loads the core and the helpers alone: prompt rewriting is the CLI's, the
    demo's and the benchmark's step, not the pipeline's."""
    tests = Path(__file__).parent
    script = (f"import sys; sys.path[:0] = [{str(tests)!r}, {str(tests.parent)!r}]\n"
              "from pathlib import Path\n"
              "from imagen_demo.core.text_encoder import TextEncoder\n"
              "from tiny import build_tiny_pipeline, build_tiny_t5\n"
              f"encoder = TextEncoder.from_pretrained(build_tiny_t5(Path({str(tmp_path)!r})), max_length=16)\n"
              "pipe = build_tiny_pipeline(encoder)\n"
              "assert pipe('红色圆形在蓝色正方形的左边', seed=0, num_inference_steps=1).images[0].size == (32, 32)\n"
              "print(sorted(m for m in sys.modules if m.startswith('imagen_demo')))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    loaded = eval(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else proc.stderr
    assert loaded and all(m in ("imagen_demo", "imagen_demo.core", "imagen_demo.utils") or
                          m.startswith(("imagen_demo.core.", "imagen_demo.utils.")) for m in loaded), loaded
