"""Train shapes-CLIP: open_clip's `ClipLoss` over batches of the shapes world's train split, on a CPU.

Resumable and time-limited like the generator's trainer: a checkpoint (model, AdamW state, step, seconds) goes to
the run folder every `checkpoint_every` steps and when training stops, and each step's batch is drawn from
(seed, step) alone, so a resumed run sees exactly the batches an uninterrupted one would have. Stopping for any
reason but an error also exports the weights to `output`.
"""

from __future__ import annotations

import csv
import json
import math
import time
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from imagen_demo.shapes import COLOURS, SHAPES, Spec, held_out_combos, sample_example
from imagen_demo.shapes.vocab import MAX_COUNT, POSITIONS, RELATIONS, SIZES
from imagen_demo.utils.atomic import atomic_path

from ..metrics.shapes_clip import SHIPPED, ShapesClip

CHECKPOINT_FILE = "checkpoint.safetensors"
LOSS_FILE = "loss.csv"


@dataclass
class Recipe:
    """recipes/shapes-clip.toml: the model (open_clip's `embed_dim`, `vision_cfg`, `text_cfg`) and how to train it."""

    model: dict
    output: str = str(SHIPPED)
    run_dir: str = "runs/shapes-clip"
    plain_background: float = 0.5  # share of renders on a plain background (else a gradient with noise)
    near_misses: float = 0.5  # chance that an example brings a near miss of itself into the batch (see near_miss)
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    steps: int = 1000  # the cosine schedule's length
    checkpoint_every: int = 100
    seed: int = 0

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown or "model" not in data:
            raise ValueError(f"{path}: needs a [model] table; unknown keys {sorted(unknown)}")
        return cls(**data)


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay to 0 at `steps` (open_clip_train's schedule)."""
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * recipe.learning_rate


def near_miss(spec, rng: np.random.Generator):
    """A train-split spec that differs from `spec` in one attribute (a shape, colour, count, size, position or the
    relation), or None. Random batches seldom hold such pairs, and they are what held-out prompts tell apart."""
    for _ in range(20):
        index = int(rng.integers(len(spec.groups)))
        group = spec.groups[index]
        options = {"shape": SHAPES, "colour": tuple(COLOURS) if group.colour else (), "size": (*SIZES, None),
                   "count": tuple(range(2, MAX_COUNT + 1)) if group.count > 1 else (),
                   "position": POSITIONS if group.position else (), "relation": RELATIONS if spec.relation else ()}
        attributes = [a for a, values in options.items() if values]
        attribute = attributes[int(rng.integers(len(attributes)))]
        value = options[attribute][int(rng.integers(len(options[attribute])))]
        try:
            if attribute == "relation":
                other = Spec(spec.groups, value)
            else:
                groups = list(spec.groups)
                groups[index] = replace(group, **{attribute: value})
                other = Spec(tuple(groups), spec.relation)
        except ValueError:  # e.g. both groups now the same colour and shape
            continue
        if other != spec and not held_out_combos(other):
            return other
    return None


def batch(recipe: Recipe, clip: ShapesClip, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels, tokens) of `batch_size` train-split examples with distinct specs (two captions of one scene would be
    scored as each other's mismatches), a `near_misses` share of them a near miss of another one."""
    rng = np.random.default_rng([recipe.seed, step])
    seen, images, captions = set(), [], []

    def add(spec=None):
        example = sample_example(rng, (clip.image_size,), "train", "en", plain_background=recipe.plain_background,
                                 spec=spec)
        if example.spec not in seen:
            seen.add(example.spec)
            images.append(example.images[clip.image_size])
            captions.append(example.caption)
            return example.spec
        return None

    while len(images) < recipe.batch_size:
        spec = add()
        if spec is not None and len(images) < recipe.batch_size and rng.random() < recipe.near_misses:
            twin = near_miss(spec, rng)
            if twin is not None:
                add(twin)
    return clip.pixels(images), clip.tokenize(captions)


def optimizer(recipe: Recipe, clip: ShapesClip) -> torch.optim.AdamW:
    """AdamW with no weight decay on gains, biases and the temperature (open_clip_train's groups)."""
    exclude = [p for n, p in clip.model.named_parameters()
               if p.ndim < 2 or "bias" in n or "ln" in n or "logit_scale" in n]
    excluded = {id(p) for p in exclude}
    rest = [p for p in clip.model.parameters() if id(p) not in excluded]
    return torch.optim.AdamW([{"params": exclude, "weight_decay": 0.0},
                              {"params": rest, "weight_decay": recipe.weight_decay}], lr=recipe.learning_rate)


def save_checkpoint(path: Path, clip: ShapesClip, optim: torch.optim.AdamW, step: int, seconds: float) -> None:
    tensors = {f"model.{k}": v.contiguous() for k, v in clip.model.state_dict().items()}
    for index, state in optim.state_dict()["state"].items():
        tensors.update({f"optim.{index}.{k}": torch.as_tensor(v) for k, v in state.items()})
    metadata = {"step": str(step), "seconds": str(seconds), "model": json.dumps(clip.config, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def load_checkpoint(path: Path, clip: ShapesClip, optim: torch.optim.AdamW) -> tuple[int, float]:
    """Restore model and AdamW state in place; (step, seconds trained so far)."""
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        if json.loads(metadata["model"]) != json.loads(json.dumps(clip.config, sort_keys=True)):
            raise ValueError(f"{path} holds another model than the recipe's; remove it or use another run_dir")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    clip.model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optim.load_state_dict({**optim.state_dict(), "state": state})
    return int(metadata["step"]), float(metadata["seconds"])


def train(recipe: Recipe, resume: bool = False, max_minutes: float | None = None, log=print) -> Path:
    """Train to `recipe.steps` or for `max_minutes`, whichever comes first; returns the exported folder."""
    from open_clip.loss import ClipLoss  # on use: open_clip takes seconds to import (see metrics.shapes_clip)

    clip = ShapesClip.create(seed=recipe.seed, **recipe.model)
    optim = optimizer(recipe, clip)
    run_dir = Path(recipe.run_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    step, seconds = 0, 0.0
    if resume and checkpoint.is_file():
        step, seconds = load_checkpoint(checkpoint, clip, optim)
        log(f"resumed at step {step} ({seconds / 60:.1f} min trained)")
    elif checkpoint.is_file():
        raise ValueError(f"{checkpoint} exists: pass --resume to go on from it, or remove {run_dir}")
    loss_fn, losses = ClipLoss(), []
    started = time.perf_counter()
    deadline = math.inf if max_minutes is None else started + 60 * max_minutes
    clip.train()
    while step < recipe.steps and time.perf_counter() < deadline:
        for group in optim.param_groups:
            group["lr"] = learning_rate(recipe, step)
        pixels, tokens = batch(recipe, clip, step)
        loss = loss_fn(*clip.model(pixels, tokens))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        with torch.no_grad():
            clip.model.logit_scale.clamp_(0, math.log(100))  # CLIP's cap on the temperature
        step += 1
        losses.append(loss.item())
        if step % recipe.checkpoint_every == 0 or step == recipe.steps or time.perf_counter() >= deadline:
            elapsed = seconds + time.perf_counter() - started
            save_checkpoint(checkpoint, clip, optim, step, elapsed)
            _log_loss(run_dir / LOSS_FILE, step, step * recipe.batch_size, float(np.mean(losses)),
                      learning_rate(recipe, step - 1), clip.model.logit_scale.exp().item(), elapsed)
            log(f"step {step}/{recipe.steps}  loss {np.mean(losses):.4f}  {elapsed / 60:.1f} min")
            losses = []
    seconds += time.perf_counter() - started
    clip.config["training"] = {"steps": step, "images_seen": step * recipe.batch_size, "wall_minutes": seconds / 60,
                               "torch_threads": torch.get_num_threads(), "recipe": asdict(recipe)}
    return clip.eval().save(recipe.output)


def _log_loss(path: Path, *row) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "images", "loss", "learning_rate", "logit_scale", "seconds"])
        writer.writerow(row)
