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

from imagen_demo.markdown import markdown_row, markdown_table
from imagen_demo.presets import PRESETS, unet_from_preset


def seconds_per_step(unet, batch: int, repeats: int, tokens: int = 64) -> float:
    cfg = unet.config
    x = torch.randn(batch, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    text, mask = torch.randn(batch, tokens, cfg.text_embed_dim), torch.ones(batch, tokens, dtype=torch.bool)
    extra = dict(low_res=torch.randn_like(x), noise_level=torch.full((batch,), 0.1)) if cfg.low_res_conditioning else {}
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):  # the first run warms up allocators and kernels
            start = time.perf_counter()
            unet(x, torch.full((batch,), 500), text, mask, **extra)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


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
