"""A cascade's progress as events, built on diffusers' `callback_on_step_end`: the CLI's bar and the demo's previews.

The pipeline calls back after every denoising step of every stage and says where it is (`stage_index`,
`stage_num_timesteps`, `num_timesteps`); this turns that into one event per step, with the predicted clean image
at the steps where a preview is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class ProgressEvent:
    """One denoising step done; `preview` is the predicted clean image when one was asked for at this step."""

    stage: int  # 0-based
    num_stages: int
    step: int  # steps done in this stage, 1-based
    num_steps: int
    done: int  # steps done over the whole call
    total: int
    preview: torch.Tensor | None = None  # (batch, 3, size, size) in [-1, 1]


def progress_callback(report: Callable[[ProgressEvent], None], preview_every: int = 0) -> dict:
    """Keyword arguments for an ImagenPipeline call that hand `report` a ProgressEvent after every step, with a preview
    every `preview_every` steps and at each stage's last (0: never)."""
    done = 0

    def on_step_end(pipe, step: int, timestep, tensors: dict) -> dict:
        nonlocal done
        done += 1
        num_steps = pipe.stage_num_timesteps
        wanted = preview_every > 0 and ((step + 1) % preview_every == 0 or step + 1 == num_steps)
        report(ProgressEvent(pipe.stage_index, len(pipe.stages), step + 1, num_steps, done, pipe.num_timesteps,
                             tensors["pred_original_sample"] if wanted else None))
        return {}

    return {"callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["pred_original_sample"] if preview_every > 0 else []}
