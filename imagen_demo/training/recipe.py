"""Recipes: one TOML file describes a whole cascade's training, so anyone can reproduce a model.

See recipes/shapes-default.toml for a commented example.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.defaults import recipe_defaults
from ..core.presets import PRESETS
from ..shapes.vocab import CATEGORIES


@dataclass
class StageRecipe:
    """How one stage is trained. Super-resolution stages also say the size of the image they upsample."""

    preset: str
    overrides: dict = field(default_factory=dict)  # EfficientUNet config fields on top of the preset
    beta_schedule: str = "squaredcos_cap_v2"  # the paper: cosine for the base, linear for SR
    low_res_size: int | None = None  # SR only: the previous stage's resolution
    # The stage of an --init-from pipeline this one starts from (default: the same number); e.g. 1 for a 32 -> 64
    # stage grown from a 64 px base (`low_res_conditioning` grows)
    init_stage: int | None = None
    crop_size: int | None = None  # SR only: train on random crops of this side (fully convolutional)
    max_noise_aug: float = 0.5  # SR only: augmentation level ~ U[0, max_noise_aug]
    batch_size: int = 16
    gradient_accumulation: int = 1
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    ema_decay: float = 0.999  # the EMA's decay (its ceiling when ema_warmup is on)
    ema_warmup: bool = False  # decay 1 - (1 + step)^-ema_power up to ema_decay: an EMA that suits short runs
    ema_power: float = 2 / 3
    loss_weighting: str = "mse"  # "mse" | "min_snr": Min-SNR-gamma weights (Hang et al. 2023, arXiv 2303.09556)
    min_snr_gamma: float = 5.0
    position_lr_scale: float = 1.0  # learning-rate multiplier of the U-Net's position parts (coordinate_input, ...)
    layout_loss_weight: float = 1.0  # weight of the layout prior's own loss (a U-Net with layout_prior = true)
    layout_prior_steps: int = 0  # a run that starts a layout prior first trains it alone this many steps (cheap)
    min_snr_floor: float = 0.0  # least x0-loss weight at any noise level (1: the noisiest steps count like plain x0 MSE)
    # Training timesteps drawn where the schedule's SNR is 1/noise_shift^2 of a uniform draw's (Hoogeboom et al.
    # 2023, arXiv 2301.11093): flat-colour images keep their layout at noise levels that hide a photo's, so the
    # plain schedule spends most steps where the answer is already decided (README: "What each choice bought").
    noise_shift: float = 1.0
    channels_last: bool = False  # faster convolutions on some CPUs (benchmarks/train_throughput.py measures it)
    eval_every: int = 0  # base stage: held-out shapes accuracy of EMA and raw weights every N steps, to eval.csv
    eval_prompts_per_category: int = 8
    eval_steps: int = 20
    eval_guidance: float = 5.0
    eval_categories: list[str] | None = None  # None: every category (a run on some categories only judges those)
    cond_drop_prob: float = 0.1  # the paper drops text for 10% of examples (classifier-free guidance)
    steps: int = 10_000
    checkpoint_every: int = 250
    sample_every: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        for name in ("batch_size", "gradient_accumulation", "steps", "checkpoint_every", "sample_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.cond_drop_prob < 1 or not 0 <= self.max_noise_aug <= 1:
            raise ValueError("cond_drop_prob must be in [0, 1) and max_noise_aug in [0, 1]")
        if self.loss_weighting not in ("mse", "min_snr"):
            raise ValueError(f"loss_weighting must be 'mse' or 'min_snr', got {self.loss_weighting!r}")
        if self.position_lr_scale <= 0:
            raise ValueError(f"position_lr_scale must be > 0, got {self.position_lr_scale}")
        if not 0 <= self.min_snr_floor <= self.min_snr_gamma:
            raise ValueError(f"min_snr_floor must be in [0, min_snr_gamma], got {self.min_snr_floor}")
        if self.noise_shift < 1:
            raise ValueError(f"noise_shift must be >= 1 (1: timesteps drawn uniformly), got {self.noise_shift}")
        if self.eval_every < 0 or self.eval_prompts_per_category < 1 or self.eval_steps < 1:
            raise ValueError("eval_every must be >= 0, eval_prompts_per_category and eval_steps >= 1")
        unknown = set(self.eval_categories or ()) - set(CATEGORIES)
        if unknown or self.eval_categories == []:
            raise ValueError(f"eval_categories must name some of {CATEGORIES}, got {self.eval_categories}")
        if self.eval_every and self.is_super_resolution:  # refused at load, not hours into a run
            raise ValueError("eval_every samples a base stage; super-resolution stages have no held-out eval")

    @property
    def unet_config(self) -> dict:
        return {**PRESETS[self.preset], **self.overrides}

    @property
    def is_super_resolution(self) -> bool:
        return bool(self.unet_config.get("low_res_conditioning"))


@dataclass
class Recipe:
    name: str
    output: str  # where the assembled pipeline folder goes
    run_dir: str  # checkpoints, logs, sample grids
    stages: list[StageRecipe]
    text_encoder: str = "minilm"
    max_length: int = 32
    text_cache: str | None = None  # folder of precomputed text embeddings (worth it for a fixed caption set)
    data: dict = field(default_factory=lambda: {"kind": "shapes"})
    defaults: dict = field(default_factory=dict)  # sampling defaults and sampler saved with the model (core.defaults)

    def __post_init__(self):
        if not self.stages:
            raise ValueError("a recipe needs at least one [[stages]] table")
        recipe_defaults(self.defaults)  # a misspelt sampling default fails at load, not when the model is assembled
        for i, stage in enumerate(self.stages[1:], start=1):
            if not stage.is_super_resolution or stage.low_res_size != self.stages[i - 1].unet_config["sample_size"]:
                raise ValueError(f"stage {i + 1} must be super-resolution with low_res_size = stage {i}'s sample_size")

    def stage_dir(self, stage: int) -> Path:
        return Path(self.run_dir) / f"stage_{stage}"


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe TOML; unknown keys are errors (a typo must not silently change training)."""
    raw = tomllib.loads(Path(path).read_text())
    allowed = {f.name for f in fields(StageRecipe)}
    stages = []
    for i, stage in enumerate(raw.pop("stages", []), start=1):
        unknown = set(stage) - allowed
        if unknown:
            raise ValueError(f"{path}: stage {i} has unknown keys {sorted(unknown)}")
        stages.append(StageRecipe(**stage))
    unknown = set(raw) - {f.name for f in fields(Recipe)}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return Recipe(stages=stages, **raw)
