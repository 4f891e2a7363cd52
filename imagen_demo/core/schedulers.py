"""The diffusers schedulers a stage can be driven by, by short name, configured for Imagen sampling.

A scheduler is rebuilt from its config for every call: schedulers keep per-run state (timesteps,
multistep history), so two demo requests must never share one. Thresholding is the scheduler's own
implementation (``thresholding=True``): dynamic thresholding with ratio p and no upper bound on s is
the paper's s = max(percentile(|x0|, p), 1); static clipping is the same with s fixed at 1.
"""

from __future__ import annotations

import inspect

import diffusers
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .sampling_names import SCHEDULER_CLASS_NAMES, THRESHOLDING_MODES

SCHEDULERS: dict[str, type[SchedulerMixin]] = {name: getattr(diffusers, cls) for name, cls in SCHEDULER_CLASS_NAMES.items()}


def scheduler_class(name_or_class: str | type[SchedulerMixin]) -> type[SchedulerMixin]:
    """A short name ("dpm++"), a diffusers class name ("DDIMScheduler"), or a class."""
    if isinstance(name_or_class, type):
        cls = name_or_class
    elif name_or_class in SCHEDULERS:
        cls = SCHEDULERS[name_or_class]
    else:
        cls = getattr(diffusers, str(name_or_class), None)
        if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
            raise ValueError(f"unknown scheduler {name_or_class!r}; choose one of {sorted(SCHEDULERS)} or a diffusers scheduler class name")
    if "thresholding" not in inspect.signature(cls.__init__).parameters:
        raise ValueError(f"{cls.__name__} does not implement thresholding, which Imagen sampling needs; use one of {sorted(SCHEDULERS)}")
    return cls


def check_thresholding(mode: str, percentile: float) -> None:
    if mode not in THRESHOLDING_MODES:
        raise ValueError(f"thresholding must be one of {THRESHOLDING_MODES}, got {mode!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0.0 < percentile <= 1.0:
        raise ValueError(f"dynamic thresholding percentile must be in (0, 1], got {percentile!r}")


def training_scheduler(beta_schedule: str, prediction_type: str) -> DDPMScheduler:
    """The schedule a stage is trained with: cosine for the base, linear for super-resolution (the paper's)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule=beta_schedule,
        prediction_type=prediction_type,
        timestep_spacing="trailing",
        clip_sample=False,
    )


def sampling_scheduler(
    base: SchedulerMixin,
    name_or_class: str | type[SchedulerMixin] | None,
    prediction_type: str,
    thresholding: str = "dynamic",
    percentile: float = 0.995,
) -> SchedulerMixin:
    """A fresh scheduler for one sampling run, sharing `base`'s noise schedule."""
    check_thresholding(thresholding, percentile)
    cls = scheduler_class(name_or_class if name_or_class is not None else type(base))
    options = dict(
        prediction_type=prediction_type,
        thresholding=thresholding != "none",
        dynamic_thresholding_ratio=percentile,
        sample_max_value=1.0 if thresholding == "static" else float("inf"),
    )
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        options["clip_sample"] = False  # thresholding above is the only clipping
    return cls.from_config(base.config, **options)
