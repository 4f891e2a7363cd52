"""What the demo accepts, said in sentences: each check raises ``gr.Error`` naming the field and its bound.

The checks run before sampling starts, and their bounds keep one request from holding the (single)
sampling slot for minutes. The pipeline checks everything again; `user_errors` turns its exceptions
into the same kind of message.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import gradio as gr

from ..core.loading import CorruptWeightsError, WeightsNotFoundError
from ..core.pipeline import MAX_SEED
from ..core.text_encoder import TextEncoder
from ..registry import ModelRegistry, ModelSpec, TextToImageModel, parse_model_list

MAX_STEPS = 100  # per stage: 100 guided 256 px steps of the small SR U-Net are about 30 s on a 2-core CPU
MAX_GUIDANCE = 30.0  # far past useful values (the shipped model samples at 5 and 3)


def prompt_text(prompt: str | None) -> str:
    text = (prompt or "").strip()
    if not text:
        raise gr.Error("Please describe the image you want, e.g. “a red circle above a blue square”.")
    return text


def truncation_notice(encoder: TextEncoder, prompt: str) -> str | None:
    """The sentence to show when the encoder will read only the start of the prompt, else None."""
    if not encoder.is_truncated(prompt):
        return None
    return (f"Your prompt is {encoder.num_tokens(prompt)} tokens long; the text encoder reads the first "
            f"{encoder.max_length}, so the end of it is ignored.")


def seed_value(seed: float | None, randomize: bool, num_images: int) -> int:
    """The first image's seed; image i gets seed + i, so the last one must stay within MAX_SEED too."""
    highest = MAX_SEED - (num_images - 1)
    if randomize:
        return random.randint(0, highest)
    if seed is None or seed != int(seed) or not 0 <= seed <= highest:
        raise gr.Error(f"The seed must be a whole number from 0 to {highest}; got {seed}.")
    return int(seed)


def steps_value(steps: float | None, what: str) -> int:
    if steps is None or steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise gr.Error(f"{what} must be a whole number of steps from 1 to {MAX_STEPS}; got {steps}.")
    return int(steps)


def guidance_value(scale: float | None, what: str) -> float:
    if scale is None or not 0 <= scale <= MAX_GUIDANCE:
        raise gr.Error(f"{what} must be between 0 and {MAX_GUIDANCE:g} (1 turns guidance off); got {scale}.")
    return float(scale)


def compare_entries(text: str, allowed_sources: set[str], limit: int) -> list[ModelSpec]:
    """Parse the Compare tab's entries; only models the demo was started with may be loaded."""
    with user_errors():
        specs = parse_model_list(text or "")
    if len(specs) > limit:
        raise gr.Error(f"Compare at most {limit} entries at a time; got {len(specs)}.")
    for spec in specs:
        if spec.source not in allowed_sources:
            known = ", ".join(sorted(allowed_sources))
            raise gr.Error(f"“{spec.source}” is not one of this demo's models ({known}); start the demo with "
                           "--compare to add others. Settings after @ can be changed freely.")
    return specs


def load_entries(registry: ModelRegistry, text: str, allowed_sources: set[str], limit: int) -> list[TextToImageModel]:
    """The entries a visitor typed, loaded and checked before anything samples."""
    specs = compare_entries(text, allowed_sources, limit)
    with user_errors():
        models = [registry.get(spec) for spec in specs]
        for model in models:
            check_entry_settings(model)
    return models


def check_entry_settings(model: TextToImageModel) -> None:
    """An entry's own settings (``@steps=...``) obey the same bounds as the Generate tab's fields."""
    for key, check in (("num_inference_steps", steps_value), ("guidance_scale", guidance_value)):
        value = model.settings.get(key)
        if value is not None:
            for v in value if isinstance(value, list) else [value]:
                check(v, f"{model.name}: {key}")


@contextmanager
def user_errors():
    """Errors that mean "bad input or bad weights" reach the user as their message, not as a bare "Error"."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, FloatingPointError, WeightsNotFoundError, CorruptWeightsError) as err:
        raise gr.Error(str(err)) from err
