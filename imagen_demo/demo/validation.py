"""What the demo accepts, said in sentences: each check raises `UserError` naming the field and its bound.

Every event runs its checks twice: first as its Gradio `validator`, before the request takes a place in the queue,
so a bad request is answered at once, under the field it is about; then in the event itself, which gets the checked
values (`checked_values`). Their bounds keep one request from holding the (single) sampling slot for minutes. The
pipeline checks everything again; `user_errors` turns its exceptions into the same kind of message.
"""

from __future__ import annotations

import logging
import random
from contextlib import contextmanager
from typing import Callable, Iterable

import gradio as gr

from ..core.loading import CorruptWeightsError, WeightsNotFoundError
from ..core.pipeline import MAX_SEED
from ..core.text_encoder import TextEncoder
from ..registry import ModelRegistry, ModelSpec, TextToImageModel, parse_model_list

MAX_STEPS = 100  # per stage: 100 guided 256 px steps of the small SR U-Net are about 30 s on a 2-core CPU
MAX_GUIDANCE = 30.0  # far past useful values (the shipped model samples at 3 and 1)
STEPS_RANGE = f"1 to {MAX_STEPS}"  # shown under every steps field
GUIDANCE_RANGE = f"0 to {MAX_GUIDANCE:g}; 1 turns guidance off"  # shown under every guidance field

log = logging.getLogger(__name__)


class UserError(gr.Error):
    """A refusal the user can act on. It stays on screen until dismissed or the next run, and the server logs it
    as one line, not a traceback: a visitor's mistake is not a fault of the server."""

    def __init__(self, message: str):
        super().__init__(message, duration=None, print_exception=False)
        log.warning("refused: %s", message)


def field_errors(checks: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Run every field's check; the message of each one that refuses, by field."""
    errors = {}
    for field, check in checks.items():
        try:
            check()
        except gr.Error as err:
            errors[field] = err.message
    return errors


def validator(fields: Iterable[str], checks: Callable[[dict], dict[str, Callable[[], object]]]) -> Callable:
    """An event's Gradio validator: `checks(values)` gives each field's check of one request's values; the answer
    is one ``gr.validate`` per input, in the inputs' order, so each refusal shows under its own field."""
    def validate(**values) -> list[dict]:
        errors = field_errors(checks(values))
        return [gr.validate(field not in errors, errors.get(field, "")) for field in fields]

    return validate


def checked_values(checks: dict[str, Callable[[], object]]) -> dict:
    """Every field's checked value; the first refusal is raised."""
    return {field: check() for field, check in checks.items()}


def prompt_text(prompt: str | None) -> str:
    text = (prompt or "").strip()
    if not text:
        raise UserError("Please describe the image you want, e.g. “a red circle above a blue square”.")
    return text


def field_value(value, field: gr.Slider | gr.Radio | gr.Dropdown):
    """A slider's value within its bounds (a whole number where it steps by 1), or a radio's or dropdown's value
    among its choices, named by the field's label."""
    if isinstance(field, gr.Slider):
        whole = field.step == 1
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not field.minimum <= value <= field.maximum or (whole and value != int(value)):
            kind = "a whole number" if whole else "a number"
            raise UserError(f"{field.label} must be {kind} from {field.minimum:g} to {field.maximum:g}; got {value}.")
        return int(value) if whole else float(value)
    choices = [choice for _, choice in field.choices]
    if value not in choices:
        raise UserError(f"{field.label} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


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
        raise UserError(f"The seed must be a whole number from 0 to {highest}; got {seed}.")
    return int(seed)


def steps_value(steps: float | None, what: str) -> int:
    if steps is None or steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise UserError(f"{what} must be a whole number of steps from 1 to {MAX_STEPS}; got {steps}.")
    return int(steps)


def guidance_value(scale: float | None, what: str) -> float:
    if scale is None or not 0 <= scale <= MAX_GUIDANCE:
        raise UserError(f"{what} must be between 0 and {MAX_GUIDANCE:g} (1 turns guidance off); got {scale}.")
    return float(scale)


def compare_entries(text: str, allowed_sources: set[str], limit: int) -> list[ModelSpec]:
    """Parse the Compare tab's entries and check their settings (``@steps=...``) against the Generate tab's
    bounds, without loading anything; only models the demo was started with may be loaded."""
    with user_errors():
        specs = parse_model_list(text or "")
    if len(specs) > limit:
        raise UserError(f"Compare at most {limit} entries at a time; got {len(specs)}.")
    for spec in specs:
        if spec.source not in allowed_sources:
            known = ", ".join(sorted(allowed_sources))
            raise UserError(f"“{spec.source}” is not one of this demo's models ({known}); start the demo with "
                            "--compare to add others. Settings after @ can be changed freely.")
        with user_errors():
            settings = spec.typed_values()
        for key, what, check in (("num_inference_steps", "steps", steps_value),
                                 ("guidance_scale", "guidance", guidance_value)):
            value = settings.get(key, [])
            for v in value if isinstance(value, list) else [value]:
                check(v, f"{spec.name}: {what}")
    return specs


def load_entries(registry: ModelRegistry, specs: list[ModelSpec]) -> list[TextToImageModel]:
    """The checked entries (`compare_entries`), loaded before anything samples; a model that cannot take an
    entry's settings is refused here."""
    with user_errors():
        return [registry.get(spec) for spec in specs]


@contextmanager
def user_errors():
    """Errors that mean "bad input or bad weights" reach the user as their message, not as a bare "Error"."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, FloatingPointError, WeightsNotFoundError, CorruptWeightsError) as err:
        raise UserError(str(err)) from err
