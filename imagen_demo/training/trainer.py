"""Train one cascade stage, then assemble the trained stages into a pipeline folder.

Everything random in a step (which examples, timesteps, noise, dropped captions, augmentation levels, crops,
dropout) is drawn from a generator seeded by (seed, step), so a run resumed from a checkpoint continues
exactly as the uninterrupted run would have: the only state is the weights, the optimizer, the EMA and
the step count, all written together and atomically.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from ..core.loading import resolve_folder
from ..core.low_res import noise_augment, upsample
from ..core.pipeline import ImagenPipeline, load_stage
from ..core.sampling import Stage, StageSettings, sample_stage
from ..core.schedulers import training_scheduler
from ..core.text_encoder import TextEncoder
from ..core.unet import POSITION_PARTS, EfficientUNet
from ..utils.atomic import atomic_dir, atomic_path, recover_dir, save_image
from .data import make_data
from .errors import TrainingDivergedError
from .evaluate import held_out_accuracy
from .grow import grow_unet, growth
from .layout_prior import layout_loss, pretrain_layout_prior
from .recipe import Recipe, StageRecipe
from .record import TRAINING_RECORD
from .text_cache import DiskEmbeddingCache

CHECKPOINT, FINAL, LOSS_LOG, EVAL_LOG, SAMPLES = "checkpoint", "final", "loss.csv", "eval.csv", "samples"
MODEL_CARD = "README.md"
LOSS_COLUMNS = ("step", "loss", "lr", "images_per_s", "elapsed_s")
GRID_SIZE = 4  # prompts in each periodic sample grid
GRID_STEPS = 25
GRAD_CLIP = 1.0
DIVERGENCE_FACTOR = 5.0  # steps whose mean loss is this many times the best such mean are not checkpointed
JUDGED_STEPS = 20  # the fewest steps whose mean loss is judged (save_checkpoint_unless_diverged)
TEXT_CACHE_SIZE = 20_000  # prompts held in memory by the trainer's text encoder (about 50 KB each)


def _generator(seed: int, *path: int) -> torch.Generator:
    """An independent CPU generator for one (seed, step, micro-batch, ...) coordinate."""
    mixed = seed
    for value in path:
        mixed = (mixed * 1_000_003 + value + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def _lr(recipe: StageRecipe, steps_this_run: int) -> float:
    """Linear warm-up, then constant (the paper's schedule); a run continued from other weights warms up again."""
    return recipe.learning_rate * min(1.0, (steps_this_run + 1) / max(recipe.warmup_steps, 1))


def parameter_groups(unet: torch.nn.Module, position_lr_scale: float) -> list[dict]:
    """The optimizer's groups: the position parts (`EfficientUNet.POSITION_PARTS`) at `position_lr_scale` times the
    learning rate, everything else at it. Zero-initialised parts grown into trained weights start far from where
    they are useful, while the rest is already there."""
    named = [(set(name.split(".")) & set(POSITION_PARTS), p) for name, p in unet.named_parameters()]
    position, rest = [p for part, p in named if part], [p for part, p in named if not part]
    return [group for group in ({"params": rest, "lr_scale": 1.0}, {"params": position, "lr_scale": position_lr_scale})
            if group["params"]]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def min_snr_weights(scheduler, t: torch.Tensor, prediction_type: str, gamma: float, floor: float = 0.0) -> torch.Tensor:
    """Per-example loss weights of Min-SNR-gamma (arXiv 2303.09556), written for the epsilon or v target.

    The paper's weight is min(SNR, gamma) on the x0 error, which all but ignores the noisiest steps (x0 weight 0.006
    at t = 950 of a cosine schedule), where sampling decides the layout; `floor` keeps that weight at least `floor`.
    """
    snr = compute_snr(scheduler, t)
    clipped = snr.clamp(min=floor, max=gamma)
    if prediction_type == "sample":  # the paper's weight is written for the x0 loss
        return clipped
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def shifted_timesteps(scheduler, shift: float) -> torch.Tensor:
    """For each uniform timestep u, the first timestep whose SNR is at most SNR(u) / shift^2 (shift 1: u itself).

    Drawing training timesteps through this table moves them towards noise without changing the schedule the
    model samples with; beyond the schedule's noisiest timestep they stay at it.
    """
    log_snr = torch.log(scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod))  # decreasing in t
    wanted = log_snr - 2 * math.log(shift)
    return torch.searchsorted(-log_snr, -wanted).clamp(max=len(log_snr) - 1)


def _area_downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="area")


def append_row(path: Path, row: dict) -> None:
    """Append a row to a CSV log; a row with columns the file lacks (a curve begun by an older version of the
    trainer) first widens the file, so a continued log never breaks or drops a column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = []
    if path.exists():
        with path.open() as f:
            columns = next(csv.reader(f), [])
    missing = [key for key in row if key not in columns]
    if columns and missing:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns + missing, restval="")
            writer.writeheader()
            writer.writerows(rows)
        columns += missing
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, columns or list(row), restval="")
        if not columns:
            writer.writeheader()
        writer.writerow(row)


class StageTrainer:
    """One stage's model, optimizer, EMA and data; `run()` trains until the recipe's step count or a time limit."""

    def __init__(self, recipe: Recipe, stage: int, resume: bool = False, device: str | None = None, show_progress: bool = True,
                 init_from: str | Path | None = None, learning_rate: float | None = None):
        from accelerate import Accelerator  # an optional dependency (the train extra): assembling needs none

        if not 1 <= stage <= len(recipe.stages):
            raise ValueError(f"stage must be in 1..{len(recipe.stages)}, got {stage}")
        self.recipe, self.stage_index = recipe, stage
        self.config: StageRecipe = recipe.stages[stage - 1]
        if learning_rate is not None:  # this run only (e.g. annealing before a commit); the checkpoint records it
            self.config = dataclasses.replace(self.config, learning_rate=learning_rate)
        self.dir = recipe.stage_dir(stage)
        self.show_progress = show_progress
        cpu = device == "cpu" or not torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no" if cpu else "bf16")
        self.device = self.accelerator.device

        checkpoint = recover_dir(self.dir / CHECKPOINT)
        if checkpoint.exists() and not resume:
            raise FileExistsError(f"{checkpoint} already exists: pass --resume to continue it, or set another run_dir")
        if resume and not checkpoint.exists():  # starting afresh would also cut the loss log back to step 0
            raise ValueError(f"--resume: there is no checkpoint at {checkpoint}; drop --resume to start from scratch,"
                             " or use --init-from to start from a pipeline's weights")
        if resume and init_from is not None:
            raise ValueError("--resume continues a checkpoint and --init-from starts from a pipeline's weights: pick one")
        # A large cache: single-object captions repeat often (about half of 40k); the all-category phase hardly
        # does (631 distinct in 640), so there MiniLM encodes nearly every batch (about 20% of a base step).
        self.text_encoder = TextEncoder.from_pretrained(recipe.text_encoder, max_length=recipe.max_length,
                                                        cache_size=TEXT_CACHE_SIZE).to(self.device)
        self.encode = DiskEmbeddingCache(self.text_encoder, recipe.text_cache).encode if recipe.text_cache else self.text_encoder.encode
        unet_config = {**self.config.unet_config, "text_embed_dim": self.text_encoder.dim}
        self.step = self.start_step = 0  # start_step: where a run continued from other weights began (its warm-up)
        self.best_window_loss = math.inf  # lowest judged mean loss so far (the divergence check)
        self.window_losses: list[float] = []  # this process's losses not yet judged
        # Cumulative over every run that led to these weights, so a model folder says how far it is trained.
        # layout_prior_images: captioned images the layout prior alone trained on (a small share of a denoising step's cost)
        self.record = {"images_seen": 0, "train_seconds": 0.0, "layout_prior_images": 0}
        if resume:
            state = json.loads((checkpoint / "state.json").read_text())
            if state["unet_config"] != json.loads(json.dumps(unet_config)):
                raise ValueError(f"{checkpoint} was trained with another U-Net config; it cannot be resumed with this recipe")
            self.step = state["step"]
            self.record.update(state.get("record", {}))
            self.best_window_loss = state.get("best_window_loss") or math.inf  # none yet: nothing judged
            if self.config.learning_rate > state["recipe"]["learning_rate"]:
                # Low-rate training (an anneal) settles where a sudden higher rate diverges: at 1e-4 -> 5e-4 the
                # shipped base went from loss 0.005 to 0.3 within 60 steps. Warm up to the higher rate instead.
                self.start_step = self.step
            unet = EfficientUNet.from_pretrained(checkpoint / "unet", use_safetensors=True)
            self.ema = EMAModel.from_pretrained(checkpoint / "ema", model_cls=EfficientUNet)
        else:
            torch.manual_seed(self.config.seed)
            unet = EfficientUNet(**unet_config) if init_from is None else self._initial_weights(init_from, unet_config)
            c = self.config
            if unet.layout is not None and c.layout_prior_steps and self.accelerator.is_main_process:
                # other processes receive these weights when the U-Net is prepared (broadcast from the first)
                data = make_data(recipe.data, seed=c.seed + 1)  # not the denoiser's stream
                started = time.monotonic()
                loss = pretrain_layout_prior(unet, self.encode, data, c.layout_prior_steps, 2 * c.batch_size,
                                             c.learning_rate * c.position_lr_scale)
                self.record["layout_prior_images"] += c.layout_prior_steps * 2 * c.batch_size
                self.record["train_seconds"] += time.monotonic() - started
                print(f"stage {stage}: layout prior trained alone for {c.layout_prior_steps} steps (loss {loss:.4f})")
            self.ema = EMAModel(unet.parameters(), decay=c.ema_decay, use_ema_warmup=c.ema_warmup, power=c.ema_power,
                                model_cls=EfficientUNet, model_config=unet.config)
        if self.config.channels_last:
            unet = unet.to(memory_format=torch.channels_last)
        self.unet_config = unet_config
        self.checkpoint_step = self.step  # the step of the checkpoint on disk (0: none yet)
        self.size, self.prediction_type = unet.config.sample_size, unet.config.prediction_type
        self.scheduler = training_scheduler(self.config.beta_schedule, unet.config.prediction_type)
        self.timesteps = shifted_timesteps(self.scheduler, self.config.noise_shift)
        optimizer = torch.optim.AdamW(parameter_groups(unet, self.config.position_lr_scale), lr=self.config.learning_rate,
                                      weight_decay=self.config.weight_decay)
        if resume:
            optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
        self.unet, self.optimizer = self.accelerator.prepare(unet, optimizer)
        self.ema.to(self.device)
        self.data = make_data(recipe.data, seed=self.config.seed)
        self._truncate_log(LOSS_LOG, LOSS_COLUMNS)
        self._truncate_log(EVAL_LOG)

    def _initial_weights(self, init_from: str | Path, unet_config: dict) -> EfficientUNet:
        """This stage's U-Net from a pipeline folder (e.g. the committed model), with its training record: the folder's
        stage of the same number, or the recipe's `init_stage`."""
        root = resolve_folder(init_from, "Imagen pipeline")
        source = self.config.init_stage or self.stage_index
        unet = load_stage(root, source).unet
        try:
            grows = growth(dict(unet.config), unet_config)
        except ValueError as err:
            raise ValueError(f"stage {source} of {root}: {err}") from None
        if grows:
            unet, added = grow_unet(unet, unet_config)
            changes = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in grows.items())
            new = f"; new, starting with no effect: {', '.join(added)}" if added else ""
            print(f"stage {self.stage_index}: grown from stage {source} of {root} ({changes}){new}")
        unet = unet.train().requires_grad_(True)
        record_file = root / TRAINING_RECORD
        if record_file.is_file():
            stage_record = json.loads(record_file.read_text()).get("stages", {}).get(str(source), {})
            self.step = self.start_step = int(stage_record.get("step", 0))  # the data stream goes on where it was
            self.record.update({k: stage_record[k] for k in self.record if k in stage_record})
            if self.accelerator.is_main_process and not (self.dir / EVAL_LOG).exists():  # the learning curve goes on too
                for row in stage_record.get("eval", []):
                    self._append(EVAL_LOG, row)
        return unet

    # ------------------------------------------------------------------------------------------- one step
    def _batch(self, step: int, micro: int) -> tuple[list[str], torch.Tensor]:
        """The images the model sees at this (step, micro-batch) on this process, and their captions."""
        c, acc = self.config, self.accelerator
        index = (step * c.gradient_accumulation + micro) * acc.num_processes + acc.process_index
        return self.data.batch(index, c.batch_size, self.size)

    def loss(self, step: int, micro: int) -> torch.Tensor:
        """Denoising loss of one micro-batch: MSE to epsilon, v or x0 (the U-Net's prediction_type) at a random timestep."""
        c = self.config
        captions, x0 = self._batch(step, micro)
        if c.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        g = _generator(c.seed, step, micro, self.accelerator.process_index)
        batch = len(captions)
        drop = torch.rand(batch, generator=g) < c.cond_drop_prob
        captions = ["" if d else text for d, text in zip(drop.tolist(), captions)]  # null text = empty prompt
        t = self.timesteps[torch.randint(0, len(self.timesteps), (batch,), generator=g)]
        extra = {}
        if self.config.is_super_resolution:
            x0, low_res, level = self.super_resolution_example(x0, g)
            extra = dict(low_res=low_res.to(self.device), noise_level=level.to(self.device))
        noise = torch.randn(x0.shape, generator=g)
        x0, noise, t = x0.to(self.device), noise.to(self.device), t.to(self.device)
        noisy = self.scheduler.add_noise(x0, noise, t)
        if self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(x0, noise, t)
        else:
            target = x0 if self.prediction_type == "sample" else noise
        text = self.encode(captions)
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))  # dropout, if any
        with self.accelerator.autocast():
            prediction, layout = self.unet(noisy, t, text.embeddings, text.mask, **extra, return_layout=True)
        per_example = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))
        if c.loss_weighting == "min_snr":
            per_example = per_example * min_snr_weights(self.scheduler, t, self.prediction_type, c.min_snr_gamma,
                                                        c.min_snr_floor)
        if layout is not None:  # the layout prior's own loss: text -> the clean picture's foreground on the grid
            per_example = per_example + c.layout_loss_weight * layout_loss(layout, x0)
        return per_example.mean()

    def super_resolution_example(self, x0: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(what to denoise, noise-augmented upsampled low-res, augmentation level) for high-res targets `x0`:
        the target's own area-downsampled copy is the low-res input, both cropped alike when the recipe crops."""
        c = self.config
        upsampled = upsample(_area_downsample(x0, c.low_res_size), self.size)
        level = torch.rand(len(x0), generator=g) * c.max_noise_aug
        low_res = noise_augment(upsampled, level, torch.randn(upsampled.shape, generator=g))
        if c.crop_size and c.crop_size < self.size:
            top, left = (int(v) for v in torch.randint(0, self.size - c.crop_size + 1, (2,), generator=g))
            crop = (slice(None), slice(None), slice(top, top + c.crop_size), slice(left, left + c.crop_size))
            x0, low_res, upsampled = x0[crop], low_res[crop], upsampled[crop]
        if self.unet_config.get("low_res_residual"):
            x0 = x0 - upsampled  # sampling adds the upsampled image back (pipeline.sample_stage)
        return x0, low_res, level

    def train_step(self, step: int) -> float:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = _lr(c, step - self.start_step) * group["lr_scale"]
        total = 0.0
        for micro in range(c.gradient_accumulation):
            last = micro == c.gradient_accumulation - 1
            with nullcontext() if last else self.accelerator.no_sync(self.unet):
                loss = self.loss(step, micro)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"stage {self.stage_index}: loss is {loss.item()} at step {step + 1}; stopped. The last good "
                        f"checkpoint ({self.dir / CHECKPOINT}, step {self.checkpoint_step}) is kept; lower learning_rate and --resume"
                    )
                self.accelerator.backward(loss / c.gradient_accumulation)
            total += loss.item() / c.gradient_accumulation
        self.accelerator.clip_grad_norm_(self.unet.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.accelerator.unwrap_model(self.unet).parameters())
        return total

    # ----------------------------------------------------------------------------------------- the loop
    def run(self, max_minutes: float | None = None) -> Path:
        """Train to the recipe's step count (or until `max_minutes`), checkpointing as it goes; returns final/."""
        c, main = self.config, self.accelerator.is_main_process
        start, images = time.monotonic(), 0
        per_step = c.batch_size * c.gradient_accumulation * self.accelerator.num_processes
        bar = tqdm(total=c.steps, initial=self.step, desc=f"stage {self.stage_index}", unit="step",
                   disable=not (main and self.show_progress))
        self.unet.train()
        deadline = math.inf if max_minutes is None else start + 60 * max_minutes
        train_seconds = 0.0  # this run's time in training steps (not evaluation, sampling or saving)
        with bar, self._stop_on_signal() as stop:
            while self.step < c.steps and not self._agree_to_stop(stop.signal is not None or time.monotonic() >= deadline):
                step_start = time.monotonic()
                loss = self.train_step(self.step)
                seconds = time.monotonic() - step_start
                train_seconds += seconds
                self.record["train_seconds"] += seconds
                self.record["images_seen"] += per_step
                self.step += 1
                self.window_losses.append(loss)
                images += per_step
                rate = images / max(train_seconds, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}")
                if main:
                    self._log(loss, rate, time.monotonic() - start)
                if self.step % c.checkpoint_every == 0:
                    self.save_checkpoint_unless_diverged()
                if self.step % c.sample_every == 0 and main:
                    self.sample_grid()
                if c.eval_every and self.step % c.eval_every == 0 and main:
                    self.evaluate()
        if self.step != self.checkpoint_step:
            self.save_checkpoint_unless_diverged()
        if stop.signal is not None:
            raise KeyboardInterrupt(f"stopped by {signal.Signals(stop.signal).name}")
        return self.export()

    @contextmanager
    def _stop_on_signal(self):
        """Ctrl-C, `kill -INT` or `kill` (SIGTERM) ends the run at the end of the current step, with the steps done so
        far saved; a second signal stops at once (a single process still saves its finished steps; one of several
        loses < checkpoint_every steps, like SIGKILL). Both are caught even where a shell started the run in the
        background with SIGINT ignored. Stopping between steps, never inside one, is what lets every process of a
        multi-process run stop at the same step instead of waiting forever in an all-reduce the others have left."""
        stop, previous = SimpleNamespace(signal=None), {}

        def request_stop(signum, frame):
            if stop.signal is not None:
                _raise_interrupt(signum, frame)
            stop.signal = signum

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, request_stop)
        try:
            yield stop
        except KeyboardInterrupt:  # a second signal, or an interrupt raised inside a step
            if self.accelerator.num_processes == 1 and self.step != self.checkpoint_step:
                self.save_checkpoint_unless_diverged()  # the finished steps; with several processes a save would wait on the others
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _agree_to_stop(self, stop: bool) -> bool:
        """True on every process if it is true on any (a time limit or a signal seen by one process stops all)."""
        if self.accelerator.num_processes == 1:
            return stop
        votes = self.accelerator.reduce(torch.tensor([float(stop)], device=self.device), reduction="sum")
        return bool(votes.item() > 0)

    def _truncate_log(self, name: str, columns: tuple[str, ...] | None = None) -> None:
        """Keep only rows up to the resumed step, so a log never holds steps that were redone."""
        path = self.dir / name
        if not path.exists() or not self.accelerator.is_main_process:
            return
        with path.open() as f:
            reader = csv.DictReader(f)
            rows = [row for row in reader if float(row["step"]) <= self.step]
            columns = columns or reader.fieldnames
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)

    def _append(self, name: str, row: dict) -> None:
        append_row(self.dir / name, row)

    def _log(self, loss: float, rate: float, elapsed: float) -> None:
        lr = _lr(self.config, self.step - 1 - self.start_step)
        self._append(LOSS_LOG, dict(zip(LOSS_COLUMNS, (self.step, f"{loss:.6f}", f"{lr:.3g}", f"{rate:.2f}", f"{elapsed:.1f}"))))

    def evaluate(self) -> dict:
        """Held-out accuracy of the EMA and the raw weights (base stages), appended to eval.csv with the record."""
        c = self.config
        raw = copy.deepcopy(self.accelerator.unwrap_model(self.unet)).eval().requires_grad_(False)
        row = {"step": self.step, "images_seen": self.record["images_seen"],
               "train_hours": f"{self.record['train_seconds'] / 3600:.4f}"}
        for name, unet in (("ema", self.ema_unet()), ("raw", raw)):
            accuracy = held_out_accuracy(Stage(unet, self.scheduler), self.text_encoder, c.eval_prompts_per_category,
                                         c.eval_steps, c.eval_guidance, categories=c.eval_categories)
            row.update({f"{name}_{category}": f"{value:.4f}" for category, value in accuracy.items()})
        self._append(EVAL_LOG, row)
        return row

    # ------------------------------------------------------------------------------------ save / sample
    def save_checkpoint_unless_diverged(self) -> Path:
        """Save, unless the steps since the last judged checkpoint diverged: their mean loss, agreed by every process,
        is above DIVERGENCE_FACTOR x the best such mean. A NaN is caught at once, but a loss that blows up and stays
        finite would otherwise overwrite the last good checkpoint within `checkpoint_every` steps. Fewer than
        JUDGED_STEPS steps are too noisy to judge (a diffusion loss depends on the sampled timesteps): they are
        saved and carried into the next judgement."""
        if len(self.window_losses) >= JUDGED_STEPS:
            window = torch.tensor([sum(self.window_losses) / len(self.window_losses)], device=self.device)
            window_loss = float(self.accelerator.reduce(window, reduction="mean").item())
            if window_loss > DIVERGENCE_FACTOR * self.best_window_loss:
                raise TrainingDivergedError(
                    f"stage {self.stage_index}: mean loss {window_loss:.4g} over the last {len(self.window_losses)} steps "
                    f"(to step {self.step}) is over {DIVERGENCE_FACTOR:g}x the best so far ({self.best_window_loss:.4g}); "
                    f"stopped. The last good checkpoint ({self.dir / CHECKPOINT}, step {self.checkpoint_step}) is kept; "
                    "lower --learning-rate and --resume")
            self.best_window_loss = min(self.best_window_loss, window_loss)
            self.window_losses = []
        return self.save_checkpoint()

    def save_checkpoint(self) -> Path:
        """Weights, EMA, optimizer and step in one folder that replaces the previous one atomically."""
        self.accelerator.wait_for_everyone()
        path = self.dir / CHECKPOINT
        if self.accelerator.is_main_process:
            with atomic_dir(path) as tmp:
                self.accelerator.unwrap_model(self.unet).save_pretrained(tmp / "unet", safe_serialization=True)
                self.ema.save_pretrained(tmp / "ema")
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                state = {"step": self.step, "record": self.record, "unet_config": self.unet_config, "recipe": asdict(self.config),
                         "best_window_loss": None if math.isinf(self.best_window_loss) else self.best_window_loss}
                (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        self.checkpoint_step = self.step
        return path

    def ema_unet(self) -> EfficientUNet:
        """A copy of the U-Net holding the EMA weights, in eval mode."""
        unet = copy.deepcopy(self.accelerator.unwrap_model(self.unet))
        self.ema.copy_to(unet.parameters())
        return unet.eval().requires_grad_(False).to(memory_format=torch.contiguous_format)

    def export(self) -> Path:
        """final/: the EMA U-Net and the scheduler it was trained with, what `assemble` reads."""
        path = self.dir / FINAL
        if self.accelerator.is_main_process:
            with atomic_dir(path) as tmp:
                self.ema_unet().save_pretrained(tmp / "unet", safe_serialization=True)
                self.scheduler.save_pretrained(tmp / "scheduler")
                (tmp / "state.json").write_text(json.dumps({"step": self.step, **self.record}) + "\n")
        return path

    @torch.no_grad()
    def sample_grid(self) -> Path:
        """Top row: training targets; bottom row: EMA samples for their captions (SR: from their low-res)."""
        captions, targets = self.data.batch(0, GRID_SIZE, self.size)
        stage = Stage(self.ema_unet(), self.scheduler)
        text = self.text_encoder.encode(captions + [""] * len(captions))
        generators = [_generator(self.config.seed, i) for i in range(len(captions))]
        low_res = _area_downsample(targets, self.config.low_res_size) if self.config.is_super_resolution else None
        settings = StageSettings(guidance_scale=3.0, num_inference_steps=GRID_STEPS, scheduler="dpm++")
        samples = sample_stage(stage, settings, text, generators, low_res)
        grid = torch.cat([torch.cat(list(targets), dim=2), torch.cat(list(samples.cpu()), dim=2)], dim=1)
        image = VaeImageProcessor(do_resize=False).postprocess(grid[None].float(), output_type="pil")[0]
        return save_image(image, self.dir / SAMPLES / f"step_{self.step:07d}.png")


def train_stage(recipe: Recipe, stage: int, resume: bool = False, max_minutes: float | None = None,
                device: str | None = None, show_progress: bool = True, init_from: str | Path | None = None,
                learning_rate: float | None = None) -> Path:
    """Train stage `stage` (1-based) of `recipe`; returns the folder with its final EMA weights.

    `init_from` (a pipeline folder, or "default") starts from that pipeline's weights for this stage and continues
    its training record and data stream: how training goes on from committed weights on a new machine. `learning_rate`
    replaces the recipe's for this run only.
    """
    trainer = StageTrainer(recipe, stage, resume=resume, device=device, show_progress=show_progress, init_from=init_from,
                           learning_rate=learning_rate)
    return trainer.run(max_minutes)


def assemble(recipe: Recipe, output: str | Path | None = None) -> Path:
    """Gather every stage's final/ weights into one pipeline folder loadable by ImagenPipeline.from_pretrained."""
    text_encoder = TextEncoder.from_pretrained(recipe.text_encoder, max_length=recipe.max_length)
    stages, record = [], {"recipe": recipe.name, "data": recipe.data.get("kind", "shapes"), "stages": {}}
    for i in range(1, len(recipe.stages) + 1):
        final = recover_dir(recipe.stage_dir(i) / FINAL)
        if not (final / "unet").is_dir():
            raise FileNotFoundError(f"stage {i} has no trained weights at {final}; run `train --stage {i}` first")
        unet = EfficientUNet.from_pretrained(final / "unet", use_safetensors=True)
        stages.append(Stage(unet, DDPMScheduler.from_pretrained(final / "scheduler")))
        record["stages"][str(i)] = json.loads((final / "state.json").read_text())
        curve = recipe.stage_dir(i) / EVAL_LOG
        if curve.is_file():
            with curve.open() as f:
                record["stages"][str(i)]["eval"] = [{k: float(v) for k, v in row.items() if v != ""}  # "": a column logged later
                                                     for row in csv.DictReader(f)]
    output = Path(output or recipe.output)
    extra = {TRAINING_RECORD: record}
    if (output / MODEL_CARD).is_file():  # the card is written by hand: a new assembly keeps it
        extra[MODEL_CARD] = (output / MODEL_CARD).read_text()
    ImagenPipeline.from_stages(text_encoder, stages, recipe.defaults).save_pretrained(output, extra_files=extra)
    return output
