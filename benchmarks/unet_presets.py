"""Parameter count and seconds per denoising step of each U-Net preset on this machine.

One step is one U-Net forward; with classifier-free guidance it runs at twice the batch, which is what
sampling pays. Usage::

    python -m benchmarks.unet_presets                       # every preset
    python -m benchmarks.unet_presets --presets small-base,small-sr --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from imagen_demo.core.presets import PRESETS, unet_from_preset
from imagen_demo.utils.markdown import markdown_row, markdown_table


def step_inputs(config, batch: int, tokens: int = 64, seed: int = 0) -> dict:
    """Random inputs of one denoising step for a U-Net with this config; the same tensors feed imagen-pytorch's."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, config.in_channels, config.sample_size, config.sample_size)
    super_resolution = config.low_res_conditioning
    return dict(
        sample=torch.randn(shape, generator=generator), timestep=500,
        text=torch.randn(batch, tokens, config.text_embed_dim, generator=generator),
        mask=torch.ones(batch, tokens, dtype=torch.bool),
        low_res=torch.randn(shape, generator=generator) if super_resolution else None,
        noise_level=torch.full((batch,), 0.1) if super_resolution else None,
    )


def forward(unet, inputs: dict) -> torch.Tensor:
    """One denoising forward of our U-Net on `step_inputs`, the timestep as a sampling loop passes it."""
    return unet(inputs["sample"], torch.tensor(inputs["timestep"]), inputs["text"], inputs["mask"], inputs["low_res"],
                inputs["noise_level"])


def median_seconds(calls: dict, rounds: int) -> dict:
    """Median seconds of each call over `rounds`; the calls take turns, so a noisy machine slows them alike.

    A first, untimed round warms up allocators, kernels and any compiling.
    """
    times = {name: [] for name in calls}
    with torch.no_grad():
        for round_ in range(rounds + 1):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                if round_:
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def seconds_per_step(unet, batch: int, repeats: int, tokens: int = 64) -> float:
    inputs = step_inputs(unet.config, batch, tokens)
    return median_seconds({"step": lambda: forward(unet, inputs)}, repeats)["step"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32")
    print(markdown_table(["preset", "parameters", "resolution", "s/step, batch 1", "s/step, batch 2 (CFG)"]))
    for name in args.presets.split(","):
        torch.manual_seed(0)
        unet = unet_from_preset(name).eval()
        params = sum(p.numel() for p in unet.parameters())
        one, two = (seconds_per_step(unet, batch, args.repeats) for batch in (1, 2))
        size = unet.config.sample_size
        print(markdown_row([name, f"{params / 1e6:,.1f}M", f"{size}x{size}", f"{one:.3f}", f"{two:.3f}"]), flush=True)
        del unet


if __name__ == "__main__":
    main()
