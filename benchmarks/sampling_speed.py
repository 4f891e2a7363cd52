"""Sampling and training speed of the shipped model against imagen-pytorch, side by side in one run.

Prints, for the model's saved default settings:
- seconds per 256x256 image through the whole pipeline (text encoder, schedulers, both stages): eager with
  contiguous weights, channels_last (the pipeline's default), and with `--compile` channels_last plus torch.compile
  (ImagenPipeline.compile);
- seconds per denoising forward of each stage's U-Net at the defaults' batch (2 with guidance, 1 without) and the
  U-Nets' seconds per image (steps x forward), against imagen-pytorch 2.1.0 `Unet`s matched in parameter count and
  fed the same random text embeddings, when imagen-pytorch is installed (requirements-bench-speed.txt);
- training images/s of the base U-Nets: forward, MSE, backward and AdamW on random data.

Every measurement takes turns with all the others, round after round, and the median over rounds is reported, so
a machine whose load changes during the run slows them alike. Our sampling forward gets its text part from
`encode_text` once per stage, as the pipeline does; imagen-pytorch's sampler recomputes its own every step, so its
forward here does too. Usage::

    python -m benchmarks.sampling_speed                          # the shipped model
    python -m benchmarks.sampling_speed --compile --rounds 5     # also compiled (minutes of compiling first)
"""

from __future__ import annotations

import argparse
import copy
import itertools
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import imagen_pytorch_baseline as baseline
from benchmarks.unet_presets import forward, median_seconds, step_inputs
from imagen_demo.core.pipeline import ImagenPipeline
from imagen_demo.core.sampling import per_stage
from imagen_demo.utils.markdown import markdown_table

PROMPTS = ("a red circle above a blue square", "two green stars", "a big yellow triangle",
           "a small purple star to the left of a green circle")
BASELINE = "imagen-pytorch 2.1.0"


def laid_out(pipe: ImagenPipeline, memory_format: torch.memory_format) -> ImagenPipeline:
    """`pipe` with its U-Nets' convolution weights in `memory_format` (channels_last from the start;
    `torch.contiguous_format` is the layout they were trained and saved in), and no progress bar."""
    for stage in pipe.stages:
        stage.unet.to(memory_format=memory_format)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_variants(load: Callable[[], ImagenPipeline], compile: bool) -> dict[str, ImagenPipeline]:
    """One copy of the pipeline per speed option."""
    variants = {"eager": laid_out(load(), torch.contiguous_format), "channels_last": laid_out(load(), torch.channels_last)}
    if compile:
        variants["compiled"] = laid_out(load(), torch.channels_last).compile()
    return variants


def _per_stage(pipe: ImagenPipeline, key: str) -> list:
    return per_stage(getattr(pipe.defaults, key), len(pipe.stages), key)


def _gflops(call: Callable[[], torch.Tensor]) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops() / 1e9


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _train_step(unet: torch.nn.Module, run: Callable, inputs: dict,
                memory_format: torch.memory_format = torch.contiguous_format) -> Callable[[], None]:
    """One training step (forward, MSE to a random target, backward, AdamW) on a trainable copy of `unet`."""
    unet = copy.deepcopy(unet).train().requires_grad_(True).to(memory_format=memory_format)
    inputs = dict(inputs, sample=inputs["sample"].contiguous(memory_format=memory_format))  # as the trainer does
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    target = torch.randn_like(inputs["sample"])

    def step() -> None:
        with torch.enable_grad():
            loss = F.mse_loss(run(unet, inputs), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def _forward_calls(variants: dict[str, ImagenPipeline], matched: list) -> tuple[list[dict], dict]:
    """Per stage: its batch, steps, parameters and GFLOPs; and a denoising forward of every (variant, stage)."""
    eager = variants["eager"]
    tokens = eager.prompt_encoder.max_length
    guidance, steps = _per_stage(eager, "guidance_scale"), _per_stage(eager, "num_inference_steps")
    stages, calls = [], {}
    for i, stage in enumerate(eager.stages):
        batch = 1 if guidance[i] == 1.0 else 2
        inputs = step_inputs(stage.unet.config, batch, tokens)
        for name, pipe in variants.items():
            unet = pipe.stages[i].unet
            ours = dict(inputs, text=unet.encode_text(inputs["text"], inputs["mask"]), mask=None)
            calls[name, i] = lambda unet=unet, x=ours: forward(unet, x)
        row = {"stage": i + 1, "size": stage.size, "batch": batch, "steps": steps[i], "guidance": guidance[i],
               "parameters": {"ours": _params(stage.unet)}, "gflops": {"ours": _gflops(calls["eager", i])}}
        if matched:
            calls[BASELINE, i] = lambda unet=matched[i], x=inputs: baseline.forward(unet, x)
            row["parameters"][BASELINE] = _params(matched[i])
            row["gflops"][BASELINE] = _gflops(calls[BASELINE, i])
        stages.append(row)
    return stages, calls


def _training_calls(base: torch.nn.Module, matched_base: torch.nn.Module | None, tokens: int, batch: int) -> dict:
    """A training step of our base U-Net (contiguous and channels_last) and of imagen-pytorch's."""
    inputs = step_inputs(base.config, batch, tokens)
    steps = {"eager": _train_step(base, forward, inputs),
             "channels_last": _train_step(base, forward, inputs, torch.channels_last)}
    if matched_base is not None:
        steps[BASELINE] = _train_step(matched_base, baseline.forward, inputs)
    return steps


def measure(load: Callable[[], ImagenPipeline], rounds: int = 5, compile: bool = False, train_batch: int = 16,
            with_baseline: bool = True) -> dict:
    """Every timing of the module docstring, all taking turns; `load` makes a fresh copy of the pipeline."""
    variants = load_variants(load, compile)
    prompts = {name: itertools.cycle(PROMPTS) for name in variants}
    images = {("image", name): lambda name=name, pipe=pipe: pipe.generate_image(next(prompts[name]), seed=0)
              for name, pipe in variants.items()}
    eager = variants["eager"]
    tokens = eager.prompt_encoder.max_length
    matched = [baseline.matched_unet(stage.unet, tokens) for stage in eager.stages] if with_baseline else []
    stages, forwards = _forward_calls(variants, matched)
    training = _training_calls(eager.stages[0].unet, matched[0] if matched else None, tokens, train_batch)
    seconds = median_seconds({**images, **{("forward", *k): call for k, call in forwards.items()},
                              **{("train", k): call for k, call in training.items()}}, rounds)
    forwards = {k: seconds["forward", *k] for k in forwards}
    names = [*variants, *([BASELINE] if matched else [])]
    return {"threads": torch.get_num_threads(), "rounds": rounds, "defaults": eager.defaults.to_dict(),
            "samplers": [type(stage.scheduler).__name__ for stage in eager.stages], "stages": stages,
            "images": {name: seconds["image", name] for name in variants}, "forwards": forwards,
            "per_image": {name: sum(row["steps"] * forwards[name, row["stage"] - 1] for row in stages) for name in names},
            "training": {name: train_batch / seconds["train", name] for name in training},
            "train_batch": train_batch, "baseline": bool(matched)}


def speedups(result: dict) -> dict[str, dict[str, float]]:
    """For each of our variants, imagen-pytorch's time over ours: per stage forward, per image, training."""
    if not result["baseline"]:
        return {}
    out = {}
    for name in result["images"]:
        row = {f"stage {s['stage']} forward": result["forwards"][BASELINE, s["stage"] - 1] / result["forwards"][name, s["stage"] - 1]
               for s in result["stages"]}
        row["U-Nets per image"] = result["per_image"][BASELINE] / result["per_image"][name]
        if name in result["training"]:
            row["training"] = result["training"][name] / result["training"][BASELINE]
        out[name] = row
    return out


def markdown(result: dict) -> str:
    stages = result["stages"]
    eager = result["images"]["eager"]
    lines = [f"torch {torch.__version__}, {result['threads']} CPU threads, float32; medians of {result['rounds']} rounds, "
             "variants taking turns", "",
             f"Whole pipeline at the saved defaults ({' / '.join(dict.fromkeys(result['samplers']))}, steps "
             f"{' + '.join(str(s['steps']) for s in stages)}, guidance {' / '.join(str(s['guidance']) for s in stages)}), "
             f"one {stages[-1]['size']}x{stages[-1]['size']} image per call:",
             markdown_table(["sampling", "s / image", "vs eager"],
                            ([name, f"{s:.2f}", f"{eager / s:.2f}x"] for name, s in result["images"].items()))]
    libraries = ["ours", *([BASELINE] if result["baseline"] else [])]
    lines += ["", "U-Nets, same random text embeddings; a forward is one denoising step at the defaults' batch:",
              markdown_table(["stage", "batch", *(f"{lib}: parameters, GFLOPs" for lib in libraries)],
                             ([f"{s['stage']} ({s['size']} px)", s["batch"],
                               *(f"{s['parameters'][lib] / 1e6:.2f}M, {s['gflops'][lib]:.2f}" for lib in libraries)]
                              for s in stages))]
    names = [*result["images"], *([BASELINE] if result["baseline"] else [])]
    steps = " + ".join(f"{s['steps']} x stage {s['stage']}" for s in stages)
    lines += ["", markdown_table(
        ["U-Net", *(f"s / forward, stage {s['stage']}" for s in stages), f"U-Net s / image ({steps})",
         f"training images/s (stage 1, batch {result['train_batch']})"],
        ([name, *(f"{result['forwards'][name, s['stage'] - 1]:.3f}" for s in stages), f"{result['per_image'][name]:.2f}",
          f"{result['training'][name]:.1f}" if name in result["training"] else "—"] for name in names))]
    ratios = speedups(result)
    if ratios:
        columns = list(next(iter(ratios.values())))
        lines += ["", f"Speed-up over {BASELINE} (its time / ours; training: our images/s / its):",
                  markdown_table(["ours", *columns],
                                 ([name, *(f"{row[c]:.2f}x" if c in row else "—" for c in columns)] for name, row in ratios.items()))]
    else:
        lines += ["", "imagen-pytorch is not installed: pip install --no-deps -r requirements-bench-speed.txt"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="pipeline folder, hub id or 'default' (the shipped model)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time ImagenPipeline.compile() (compiles first)")
    args = parser.parse_args(argv)
    result = measure(lambda: ImagenPipeline.from_pretrained(args.model), args.rounds, args.compile,
                     with_baseline=baseline.unet_class() is not None)
    print(markdown(result))


if __name__ == "__main__":
    main()
