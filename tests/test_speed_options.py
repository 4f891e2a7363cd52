"""The sampling speed options (channels_last, torch.compile) change no output beyond float noise."""

from __future__ import annotations

import time

import torch

from benchmarks.sampling_speed import laid_out
from tiny import build_tiny_pipeline

PROMPT = "a red circle above a blue square"


def _images(pipe) -> torch.Tensor:
    return pipe(PROMPT, seed=0, output_type="pt").images


def test_channels_last_and_compiled_sampling_give_the_eager_images(own_encoder):
    eager = laid_out(build_tiny_pipeline(own_encoder), torch.contiguous_format)
    channels_last = laid_out(build_tiny_pipeline(own_encoder), torch.channels_last)
    started = time.perf_counter()
    compiled = laid_out(build_tiny_pipeline(own_encoder), torch.channels_last).compile()
    print(f"compiling the tiny cascade with its warm-up took {time.perf_counter() - started:.0f} s")
    assert channels_last.stages[1].unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not eager.stages[1].unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    expected = _images(eager)
    torch.testing.assert_close(_images(channels_last), expected, atol=1e-4, rtol=0)
    with torch._dynamo.config.patch(error_on_recompile=True):  # the warm-up compiled what a default call needs
        torch.testing.assert_close(_images(compiled), expected, atol=1e-4, rtol=0)


def test_a_compiling_registry_compiles_each_cascade_once_on_load(tiny_pipe_dir, monkeypatch):
    from imagen_demo.core.pipeline import ImagenPipeline
    from imagen_demo.registry import ModelRegistry

    compiled = []
    monkeypatch.setattr(ImagenPipeline, "compile", lambda pipe: compiled.append(pipe) or pipe)
    ModelRegistry("cpu").get(str(tiny_pipe_dir))
    assert compiled == []
    registry = ModelRegistry("cpu", compile=True)
    model = registry.get(str(tiny_pipe_dir))
    registry.get(f"{tiny_pipe_dir}@steps=2")
    assert compiled == [model.pipeline]


def test_app_compiles_with_the_flag_or_the_environment_variable(monkeypatch, capsys):
    import app

    made = []

    def build_demo(model, registry, **kwargs):  # records the registry's switch, then stops the start
        made.append(registry.compile)
        raise ValueError("stopped before loading")

    monkeypatch.setattr("imagen_demo.demo.build_demo", build_demo)
    monkeypatch.delenv("IMAGEN_COMPILE", raising=False)
    assert app.main(["--compile"]) == 2
    assert app.main([]) == 2
    monkeypatch.setenv("IMAGEN_COMPILE", "1")
    assert app.main([]) == 2
    assert made == [True, False, True]
    assert capsys.readouterr().err.count("error: stopped before loading") == 3
