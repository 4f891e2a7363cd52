"""diffusers schedulers by short name, the training noise schedules, and a fresh scheduler per sampling run.

A scheduler is rebuilt from its config for every run: schedulers keep per-run state (timesteps, multistep
history), so two demo requests must never share one. Thresholding is the scheduler's own implementation
(``thresholding=True``): dynamic thresholding with ratio p and no upper bound on s is the paper's
s = max(percentile(|x0|, p), 1); static clipping is the same with s fixed at 1. It is an Imagen rule, so it is
asked of the schedulers that sample Imagen stages only, and only when the stage thresholds.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import diffusers
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .sampling_names import SCHEDULER_CLASS_NAMES, THRESHOLDING_MODES

SCHEDULERS: dict[str, type[SchedulerMixin]] = {name: getattr(diffusers, cls) for name, cls in SCHEDULER_CLASS_NAMES.items()}


def scheduler_class(name_or_class: str | type[SchedulerMixin]) -> type[SchedulerMixin]:
    """A short name ("dpm++"), a diffusers scheduler class name ("EulerDiscreteScheduler"), or a class."""
    if isinstance(name_or_class, type):
        return name_or_class
    if name_or_class in SCHEDULERS:
        return SCHEDULERS[name_or_class]
    cls = getattr(diffusers, str(name_or_class), None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise ValueError(f"unknown scheduler {name_or_class!r}; choose one of {sorted(SCHEDULERS)} or a diffusers scheduler class name")
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
    """A fresh scheduler for one sampling run, sharing `base`'s noise schedule (`name_or_class` None: `base`'s class)."""
    check_thresholding(thresholding, percentile)
    cls = scheduler_class(name_or_class if name_or_class is not None else type(base))
    accepted = inspect.signature(cls.__init__).parameters
    if thresholding != "none" and "thresholding" not in accepted:
        raise ValueError(f"{cls.__name__} does not implement thresholding: sample this stage with thresholding 'none', "
                         f"or with one of {sorted(SCHEDULERS)}")
    options = dict(
        prediction_type=prediction_type,
        thresholding=thresholding != "none",
        dynamic_thresholding_ratio=percentile,
        sample_max_value=1.0 if thresholding == "static" else float("inf"),
        clip_sample=False,  # thresholding above is the only clipping
    )
    return cls.from_config(base.config, **{key: value for key, value in options.items() if key in accepted})


def swap_schedulers(pipe: DiffusionPipeline, name_or_class: str | type[SchedulerMixin] | Sequence) -> DiffusionPipeline:
    """A copy of any diffusers pipeline (diffusers' `from_pipe`: the same modules, no new memory) whose scheduler
    components are of another class, each keeping its noise schedule. One class for all, or one per scheduler
    component in the order of their names (an Imagen cascade's scheduler_1, scheduler_2, ...). The copy's progress
    bar shows unless its caller sets it otherwise, as a new pipeline's does."""
    names = sorted(name for name, component in pipe.components.items()
                   if name.startswith("scheduler") and isinstance(component, SchedulerMixin))
    wanted = list(name_or_class) if isinstance(name_or_class, (list, tuple)) else [name_or_class] * len(names)
    if len(wanted) != len(names):
        raise ValueError(f"got {len(wanted)} schedulers for the {len(names)} of {type(pipe).__name__} ({', '.join(names)})")
    swapped = {name: scheduler_class(cls).from_config(pipe.components[name].config) for name, cls in zip(names, wanted)}
    return type(pipe).from_pipe(pipe, **swapped)
