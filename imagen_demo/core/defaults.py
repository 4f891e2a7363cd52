"""The sampling settings a model is saved with, one typed schema: what a call leaves out comes from here.

They are saved in the pipeline folder's ``model_index.json`` (``sampling_defaults``) and every one of them is read.
A key the schema does not know is refused, so a misspelt setting cannot be saved and then silently not used.
Which sampler a stage runs is not among them: that is the class of its registered scheduler, as in every diffusers
pipeline (swap it with ``core.schedulers.swap_schedulers`` or ``pipe.scheduler_1 = ...``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .schedulers import scheduler_class

RECIPE_SAMPLER = "scheduler"  # the key of a recipe's [defaults] table that names the sampler the stages are saved with


@dataclass(frozen=True)
class SamplingDefaults:
    """Per-stage settings take one value for every stage or a list with one per stage."""

    guidance_scale: float | list[float] = 5.0
    num_inference_steps: int | list[int] = 50
    noise_aug_level: float = 0.1  # super-resolution stages: the level their low-res input is corrupted to
    # None: the paper's dynamic thresholding for every stage that denoises an image, none for a stage that predicts a
    # residual (it has no image range to hold; core.sampling explains why).
    thresholding: str | list[str] | None = None
    dynamic_thresholding_percentile: float = 0.995

    @classmethod
    def from_dict(cls, values: dict | None) -> "SamplingDefaults":
        """From a saved or written table; unknown keys are an error naming the known ones."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown sampling defaults {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def recipe_defaults(table: dict | None) -> tuple[SamplingDefaults, str | list[str] | None]:
    """A recipe's [defaults] table: the sampling defaults, and the sampler (`scheduler`, a short or class name, one
    per stage with a list) that the assembled stages are registered with; None keeps the training scheduler's class."""
    table = dict(table or {})
    sampler = table.pop(RECIPE_SAMPLER, None)
    for name in sampler if isinstance(sampler, list) else [sampler]:
        if name is not None:
            scheduler_class(name)  # an unknown name fails here, not when the trained stages are assembled
    return SamplingDefaults.from_dict(table), sampler
