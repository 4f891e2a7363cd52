"""The trainer on tiny models: the loss falls, SIGKILL + --resume equals an uninterrupted run, NaN stops cleanly."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from imagen_demo import ImagenPipeline
from imagen_demo.cli import main
from imagen_demo.core.loading import WeightsNotFoundError
from imagen_demo.shapes import parse_caption
from imagen_demo.training import TrainingDivergedError, assemble, load_recipe, train_stage
from imagen_demo.training.data import ImageFolderData, ShapesData, make_data
from imagen_demo.training.text_cache import DiskEmbeddingCache
from imagen_demo.training.trainer import StageTrainer, append_row

ROOT = Path(__file__).resolve().parents[1]


def write_recipe(folder: Path, encoder: Path, base: str = "", sr: str = "") -> Path:
    path = folder / "recipe.toml"
    path.write_text(f"""
name = "tiny"
output = "{folder / 'model'}"
run_dir = "{folder / 'run'}"
text_encoder = "{encoder}"
max_length = 16
text_cache = "{folder / 'text_cache'}"
defaults = {{guidance_scale = 2.0, num_inference_steps = 3}}
[[stages]]
preset = "tiny-base"
batch_size = 8
learning_rate = 2e-3
warmup_steps = 2
checkpoint_every = 4
sample_every = 1000
{base}
[[stages]]
preset = "tiny-sr"
low_res_size = 16
crop_size = 16
batch_size = 4
steps = 3
checkpoint_every = 2
sample_every = 3
{sr}
""")
    return path


def _wait_for_logged_steps(run: Path, steps: int, timeout: float = 180) -> None:
    """Until a background run has logged `steps` steps (its loss.csv has a header and a row per step)."""
    log, deadline = run / "stage_1" / "loss.csv", time.monotonic() + timeout
    while (not log.exists() or len(log.read_text().splitlines()) <= steps) and time.monotonic() < deadline:
        time.sleep(0.2)


def losses(run: Path, stage: int = 1) -> list[tuple[int, float]]:
    with (run / f"stage_{stage}" / "loss.csv").open() as f:
        return [(int(row["step"]), float(row["loss"])) for row in csv.DictReader(f)]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(next(folder.glob("*.safetensors")))


def test_loss_falls_and_stages_assemble_into_a_pipeline(tmp_path, tiny_t5_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="steps = 40"))
    train_stage(recipe, 1, show_progress=False)
    logged = [loss for _, loss in losses(tmp_path / "run")]
    assert len(logged) == 40
    assert np.mean(logged[-8:]) < 0.8 * np.mean(logged[:8])
    assert len(list((tmp_path / "text_cache").glob("*.safetensors"))) > 40  # captions were cached on disk

    train_stage(recipe, 2, show_progress=False)
    assert (tmp_path / "run" / "stage_2" / "samples" / "step_0000003.png").is_file()  # periodic sample grid
    pipe = ImagenPipeline.from_pretrained(assemble(recipe))
    out = pipe("a red circle", seed=0, output_type="np")
    assert out.images.shape == (1, 32, 32, 3)
    assert pipe.defaults.guidance_scale == 2.0


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_t5_dir):
    steps = "steps = 40"
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    killed.mkdir(), straight.mkdir()
    config = write_recipe(killed, tiny_t5_dir, base=steps)
    command = [sys.executable, "-m", "imagen_demo", "train", "--config", str(config), "--stage", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "run" / "stage_1" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "run" / "stage_1" / "final").exists(), "the run ended before it could be killed"
    assert json.loads(state.read_text())["step"] < 40

    assert main(["train", "--config", str(config), "--stage", "1", "--resume"]) == 0
    train_stage(load_recipe(write_recipe(straight, tiny_t5_dir, base=steps)), 1, show_progress=False)

    for part in ("unet", "ema"):
        resumed = weights(killed / "run" / "stage_1" / "checkpoint" / part)
        uninterrupted = weights(straight / "run" / "stage_1" / "checkpoint" / part)
        assert resumed.keys() == uninterrupted.keys()
        for name in resumed:
            torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=1e-6, msg=f"{part}.{name}")
    assert json.loads(state.read_text())["step"] == 40
    assert [s for s, _ in losses(killed / "run")] == list(range(1, 41))  # redone steps are not logged twice


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_t5_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="steps = 10"))
    trainer = StageTrainer(recipe, 1, show_progress=False)
    real_loss = trainer.loss
    trainer.loss = lambda step, micro: torch.tensor(float("nan")) if step == 5 else real_loss(step, micro)
    with pytest.raises(TrainingDivergedError, match="step 6.*checkpoint.*step 4"):
        trainer.run()
    checkpoint = tmp_path / "run" / "stage_1" / "checkpoint"
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 4
    assert weights(checkpoint / "unet")  # still loadable


def test_a_loss_that_blows_up_is_not_checkpointed(tmp_path, tiny_t5_dir):
    """A finite but exploding loss (too high a learning rate) must not overwrite the last good checkpoint."""
    path = write_recipe(tmp_path, tiny_t5_dir, base="steps = 60")
    path.write_text(path.read_text().replace("checkpoint_every = 4", "checkpoint_every = 20"))
    recipe = load_recipe(path)
    trainer = StageTrainer(recipe, 1, show_progress=False)
    real_loss = trainer.loss
    trainer.loss = lambda step, micro: real_loss(step, micro) * (100 if step >= 45 else 1)
    with pytest.raises(TrainingDivergedError, match=r"to step 60\).*checkpoint.*step 40"):
        trainer.run()
    state = json.loads((tmp_path / "run" / "stage_1" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 40 and 0 < state["best_window_loss"] < 10


def test_resuming_at_a_higher_learning_rate_warms_up_again(tmp_path, tiny_t5_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="steps = 4"))  # warmup_steps = 2, lr 2e-3
    train_stage(recipe, 1, show_progress=False, learning_rate=1e-3)  # an anneal
    recipe = dataclasses.replace(recipe, stages=[dataclasses.replace(recipe.stages[0], steps=6), *recipe.stages[1:]])
    train_stage(recipe, 1, resume=True, show_progress=False)
    with (tmp_path / "run" / "stage_1" / "loss.csv").open() as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates == pytest.approx([1e-3 / 2, 1e-3, 1e-3, 1e-3, 2e-3 / 2, 2e-3])


def test_ctrl_c_checkpoints_the_steps_done(tmp_path, tiny_t5_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="steps = 10"))
    trainer = StageTrainer(recipe, 1, show_progress=False)
    real_loss = trainer.loss

    def interrupted(step, micro):
        if step == 6:
            raise KeyboardInterrupt
        return real_loss(step, micro)

    trainer.loss = interrupted
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert json.loads((tmp_path / "run" / "stage_1" / "checkpoint" / "state.json").read_text())["step"] == 6


def test_existing_run_is_not_overwritten_without_resume(tmp_path, tiny_t5_dir, capsys):
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 4")
    assert main(["train", "--config", str(config), "--stage", "1"]) == 0
    assert main(["train", "--config", str(config), "--stage", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["assemble", "--config", str(config)]) == 2  # stage 2 was never trained
    assert "train --stage 2" in capsys.readouterr().err


def test_resume_finds_a_checkpoint_parked_by_a_crash_and_refuses_when_there_is_none(tmp_path, tiny_t5_dir, capsys):
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 4")
    assert main(["train", "--config", str(config), "--stage", "1", "--resume"]) == 2
    assert "drop --resume" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--stage", "1"]) == 0
    stage_dir = tmp_path / "run" / "stage_1"
    logged = (stage_dir / "loss.csv").read_text()
    (stage_dir / "checkpoint").rename(stage_dir / ".checkpoint.old")  # a crash between atomic_dir's two renames
    config.write_text(config.read_text().replace("steps = 4", "steps = 6"))
    assert main(["train", "--config", str(config), "--stage", "1", "--resume"]) == 0
    assert json.loads((stage_dir / "checkpoint" / "state.json").read_text())["step"] == 6
    assert (stage_dir / "loss.csv").read_text().startswith(logged)  # continued, not restarted from scratch


def test_recipe_typos_are_errors(tmp_path, tiny_t5_dir):
    with pytest.raises(ValueError, match="learnig_rate"):
        load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="learnig_rate = 1.0"))
    bad = write_recipe(tmp_path, tiny_t5_dir)
    bad.write_text(bad.read_text().replace("low_res_size = 16", "low_res_size = 8"))
    with pytest.raises(ValueError, match="low_res_size"):
        load_recipe(bad)


def test_disk_text_cache_matches_the_encoder_and_is_reused(tmp_path, tiny_encoder, monkeypatch):
    captions = ["a red circle", "two green stars", "a red circle"]
    cache = DiskEmbeddingCache(tiny_encoder, tmp_path / "cache")
    cached, direct = cache.encode(captions), tiny_encoder.encode(captions)
    assert torch.equal(cached.embeddings, direct.embeddings) and torch.equal(cached.mask, direct.mask)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    monkeypatch.setattr(tiny_encoder, "encode", lambda _: pytest.fail("a cached caption was encoded again"))
    again = DiskEmbeddingCache(tiny_encoder, tmp_path / "cache").encode(captions[::-1])
    assert torch.equal(again.embeddings, direct.embeddings.flip(0))
    (tmp_path / "cache" / "meta.json").write_text('{"text_encoder": "other"}')
    with pytest.raises(ValueError, match="another text_cache"):
        DiskEmbeddingCache(tiny_encoder, tmp_path / "cache")


def test_huggingface_source_reads_the_named_columns(monkeypatch):
    rows = [{"picture": PIL.Image.new("RGB", (20, 20), c), "caption": f"a {c} square"} for c in ("red", "blue")]
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        if name == "not/cached":
            raise FileNotFoundError(name)
        return rows

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    data = make_data({"kind": "huggingface", "name": "user/shapes", "image_column": "picture", "caption_column": "caption"}, seed=0)
    captions, images = data.batch(0, 2, 8)
    assert calls == [("user/shapes", "train")]
    assert sorted(captions) == ["a blue square", "a red square"] and images.shape == (2, 3, 8, 8)
    with pytest.raises(WeightsNotFoundError, match="not/cached"):
        make_data({"kind": "huggingface", "name": "not/cached"}, seed=0)
    with pytest.raises(ValueError, match="unknown data kind"):
        make_data({"kind": "webdataset"}, seed=0)


def test_data_sources_are_deterministic_in_seed_and_index(tmp_path):
    shapes = ShapesData(seed=3)
    captions, images = shapes.batch(7, 2, 16)
    again_captions, again_images = ShapesData(seed=3).batch(7, 2, 16)
    assert captions == again_captions and torch.equal(images, again_images)
    assert images.shape == (2, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert ShapesData(seed=4).batch(7, 2, 16)[0] != captions

    for i, colour in enumerate(("red", "green", "blue")):
        PIL.Image.new("RGB", (40, 30), colour).save(tmp_path / f"{i}.png")
        (tmp_path / f"{i}.txt").write_text(f"a {colour} picture\n")
    folder = ImageFolderData(tmp_path, seed=0)
    captions, images = folder.batch(0, 3, 8)  # one epoch: every image once
    assert sorted(captions) == ["a blue picture", "a green picture", "a red picture"]
    assert images.shape == (3, 3, 8, 8)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "0.png", "caption": "only red"}) + "\n")
    assert ImageFolderData(tmp_path).batch(0, 2, 8)[0] == ["only red", "only red"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no captioned images"):
        ImageFolderData(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        ImageFolderData(tmp_path / "missing")


def test_a_missing_optional_package_is_one_cli_line(tmp_path, tiny_t5_dir, capsys, monkeypatch):
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 4")
    config.write_text(config.read_text().replace('max_length = 16', 'max_length = 16\ndata = {kind = "huggingface", name = "user/shapes"}'))
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if `datasets` were not installed
    assert main(["train", "--config", str(config), "--stage", "1"]) == 2
    assert "error: Hugging Face datasets need `pip install datasets`" in capsys.readouterr().err


def test_sigterm_stops_a_background_run_with_its_steps_saved(tmp_path, tiny_t5_dir):
    """`kill PID` on a run started with `&` (where the shell ignores SIGINT) still checkpoints and exits cleanly."""
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 100000")
    script = "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); from imagen_demo.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", script, "train", "--config", str(config), "--stage", "1", "--device", "cpu"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    _wait_for_logged_steps(tmp_path / "run", 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err, err
    state = json.loads((tmp_path / "run" / "stage_1" / "checkpoint" / "state.json").read_text())
    assert state["step"] >= 3 and state["record"]["images_seen"] == 8 * state["step"]


def test_min_snr_weights_follow_the_paper_for_both_targets():
    from imagen_demo.core.schedulers import training_scheduler
    from imagen_demo.training.trainer import min_snr_weights

    scheduler = training_scheduler("squaredcos_cap_v2", "v_prediction")
    t = torch.tensor([0, 500, 999])
    alpha_bar = scheduler.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    torch.testing.assert_close(min_snr_weights(scheduler, t, "v_prediction", 5.0), snr.clamp(max=5) / (snr + 1))
    torch.testing.assert_close(min_snr_weights(scheduler, t, "epsilon", 5.0), snr.clamp(max=5) / snr)
    assert min_snr_weights(scheduler, t, "epsilon", 5.0)[0] < 0.01  # nearly clean images: the easy steps count little
    torch.testing.assert_close(min_snr_weights(scheduler, t, "sample", 5.0), snr.clamp(max=5))
    floored = min_snr_weights(scheduler, t, "v_prediction", 5.0, floor=1.0)  # the noisiest steps: plain x0 MSE, at least
    torch.testing.assert_close(floored, snr.clamp(min=1, max=5) / (snr + 1))
    assert (floored >= min_snr_weights(scheduler, t, "v_prediction", 5.0)).all() and floored[-1] > 100 * snr[-1]


def test_noise_shift_draws_training_timesteps_at_a_quarter_of_the_snr():
    from imagen_demo.core.schedulers import training_scheduler
    from imagen_demo.training.recipe import StageRecipe
    from imagen_demo.training.trainer import shifted_timesteps

    scheduler = training_scheduler("squaredcos_cap_v2", "v_prediction")
    assert torch.equal(shifted_timesteps(scheduler, 1.0), torch.arange(1000))
    table = shifted_timesteps(scheduler, 2.0)
    snr = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    inside = table < 999  # the rest asked for more noise than the schedule has
    assert inside.float().mean() > 0.9 and (table >= torch.arange(1000)).all()
    assert (snr[table[inside]] <= snr[inside] / 4).all() and (snr[table[inside] - 1] > snr[inside] / 4).all()
    assert (table >= 600).float().mean() > 0.6  # uniform draws: 0.4
    with pytest.raises(ValueError, match="noise_shift"):
        StageRecipe(preset="tiny-base", noise_shift=0.5)


def test_curriculum_and_background_mix_shape_the_stream():
    curriculum = [{"until_images": 64, "categories": {"colors": 1}}, {"categories": {"counting": 1, "position": 1}}]
    data = ShapesData(seed=0, plain_background=1.0, curriculum=curriculum)
    early = [parse_caption(c).category for c in data.batch(0, 32, 32)[0] + data.batch(1, 32, 32)[0]]
    late = [parse_caption(c).category for c in data.batch(2, 32, 32)[0] + data.batch(9, 32, 32)[0]]
    assert set(early) == {"colors"} and set(late) == {"counting", "position"}
    images = data.batch(3, 8, 32)[1]
    corners = images[:, :, :2, :2].flatten(2)  # backgrounds: one flat grey, no gradient or noise
    assert (corners.std(dim=2) < 1e-6).all()
    with pytest.raises(ValueError, match="curriculum phase 1"):
        ShapesData(curriculum=[{"categories": {"unicorns": 1}}])
    with pytest.raises(ValueError, match="plain_background"):
        ShapesData(plain_background=1.5)


def test_eval_log_and_init_from_continue_the_committed_record(tmp_path, tiny_t5_dir):
    """Training goes on from an assembled pipeline (what is committed) with its images, hours and data stream."""
    extra = "steps = 6\neval_every = 3\neval_prompts_per_category = 1\neval_steps = 2"
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base=extra))
    train_stage(recipe, 1, show_progress=False)
    train_stage(recipe, 2, show_progress=False)
    with (tmp_path / "run" / "stage_1" / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["images_seen"]) for r in rows] == [("3", "24"), ("6", "48")]
    assert all(0 <= float(r[f"{w}_overall"]) <= 1 for r in rows for w in ("ema", "raw"))
    assert all(0 <= float(r[f"{w}_check_shape"]) <= 1 for r in rows for w in ("ema", "raw"))  # the smoother signal
    assemble(recipe)
    (tmp_path / "model" / "README.md").write_text("# model card\n")
    assemble(recipe)
    assert (tmp_path / "model" / "README.md").read_text() == "# model card\n"  # a new assembly keeps the card
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["stages"]["1"]["step"] == 6 and record["stages"]["1"]["images_seen"] == 48
    assert record["data"] == "shapes"  # what tells the demo this is a shapes-world model
    assert [row["images_seen"] for row in record["stages"]["1"]["eval"]] == [24, 48]

    (tmp_path / "next").mkdir()
    again = load_recipe(write_recipe(tmp_path / "next", tiny_t5_dir, base="steps = 8"))
    trainer = StageTrainer(again, 1, show_progress=False, init_from=tmp_path / "model")
    committed = ImagenPipeline.from_pretrained(tmp_path / "model").stages[0].unet
    for a, b in zip(trainer.unet.parameters(), committed.parameters()):
        torch.testing.assert_close(a, b)
    assert trainer.step == 6 and trainer.record["images_seen"] == 48
    trainer.run()
    state = json.loads((tmp_path / "next" / "run" / "stage_1" / "final" / "state.json").read_text())
    assert state["step"] == 8 and state["images_seen"] == 64 and state["train_seconds"] > record["stages"]["1"]["train_seconds"]
    with (tmp_path / "next" / "run" / "stage_1" / "eval.csv").open() as f:
        assert [float(row["step"]) for row in csv.DictReader(f)] == [3, 6]  # the committed curve, continued
    # A stage not retrained on this machine: zero minutes put the committed weights and record in final/
    kept = StageTrainer(again, 2, show_progress=False, init_from=tmp_path / "model").run(max_minutes=0)
    torch.testing.assert_close(weights(kept / "unet"), weights(tmp_path / "model" / "unet_2"))
    assert json.loads((kept / "state.json").read_text())["images_seen"] == record["stages"]["2"]["images_seen"]
    assemble(again)
    assert json.loads((tmp_path / "next" / "model" / "training.json").read_text())["stages"]["2"] == record["stages"]["2"]
    (tmp_path / "sr").mkdir()
    with pytest.raises(ValueError, match="super-resolution stages have no held-out eval"):
        load_recipe(write_recipe(tmp_path / "sr", tiny_t5_dir, sr="eval_every = 2"))
    with pytest.raises(ValueError, match="pick one"):
        StageTrainer(again, 1, resume=True, init_from=tmp_path / "model")
    (tmp_path / "other").mkdir()
    other = load_recipe(write_recipe(tmp_path / "other", tiny_t5_dir, base='overrides = {block_out_channels = [8, 16]}'))
    with pytest.raises(ValueError, match="another U-Net config"):
        StageTrainer(other, 1, init_from=tmp_path / "model")


def test_a_log_row_with_new_columns_widens_the_file(tmp_path):
    """A curve begun before a column existed goes on: old rows keep their values, the new column starts empty."""
    log = tmp_path / "eval.csv"
    append_row(log, {"step": 1, "ema_overall": 0.1})
    append_row(log, {"step": 2, "ema_overall": 0.2, "ema_check_shape": 0.5})
    append_row(log, {"step": 3, "ema_overall": 0.3, "ema_check_shape": 0.6})
    with log.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["ema_overall"], r["ema_check_shape"]) for r in rows] == [
        ("1", "0.1", ""), ("2", "0.2", "0.5"), ("3", "0.3", "0.6")]


def _torchrun(config: Path, *args: str) -> subprocess.Popen:
    """A two-process data-parallel run on the CPU (gloo), one thread each: how the 2-core machine trains fastest."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "imagen_demo", "train", "--config", str(config), "--stage", "1", "--device", "cpu", *args]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_train_together_and_a_kill_stops_both_at_one_step(tmp_path, tiny_t5_dir):
    """Each step takes one batch per process; SIGTERM stops both at the same step with that step saved (no process is
    left waiting in an all-reduce), and --resume goes on from it."""
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 100000")
    proc = _torchrun(config)
    _wait_for_logged_steps(tmp_path / "run", 3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert "continue with --resume" in out, out
    state = json.loads((tmp_path / "run" / "stage_1" / "checkpoint" / "state.json").read_text())
    assert state["step"] >= 3 and state["record"]["images_seen"] == 2 * 8 * state["step"]  # batch 8 on each process
    assert [s for s, _ in losses(tmp_path / "run")] == list(range(1, state["step"] + 1))  # one log, by the main process

    proc = _torchrun(config, "--resume", "--max-minutes", "0.1")  # each process sees the time limit at its own moment
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    final = json.loads((tmp_path / "run" / "stage_1" / "final" / "state.json").read_text())
    assert final["step"] > state["step"] and final["images_seen"] == 16 * final["step"]


def test_learning_rate_flag_overrides_the_recipe_for_one_run(tmp_path, tiny_t5_dir, capsys):
    """`--learning-rate` (e.g. annealing before a commit) changes this run only; the recipe file stays as it was."""
    config = write_recipe(tmp_path, tiny_t5_dir, base="steps = 3")
    assert main(["train", "--config", str(config), "--stage", "1", "--device", "cpu", "--learning-rate", "1e-5"]) == 0
    with (tmp_path / "run" / "stage_1" / "loss.csv").open() as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == [5e-6, 1e-5, 1e-5]  # warm-up of 2 steps, then 1e-5
    assert "learning_rate = 2e-3" in config.read_text()
    with pytest.raises(SystemExit):
        main(["train", "--config", str(config), "--stage", "1", "--learning-rate", "0"])
    assert "must be > 0" in capsys.readouterr().err


def test_a_residual_super_resolution_stage_learns_the_difference_to_the_upsampled_image(tmp_path, tiny_t5_dir):
    """Same draws as the plain stage (same crop, low-res input and level); only the target becomes
    crop(x0) - crop(upsample(low-res))."""
    from imagen_demo.core.low_res import upsample

    plain_dir, residual_dir = tmp_path / "plain", tmp_path / "residual"
    plain_dir.mkdir(), residual_dir.mkdir()
    plain = StageTrainer(load_recipe(write_recipe(plain_dir, tiny_t5_dir)), 2, show_progress=False)
    residual = StageTrainer(load_recipe(write_recipe(
        residual_dir, tiny_t5_dir, sr='overrides = {low_res_residual = true, prediction_type = "sample"}')),
                            2, show_progress=False)
    x0 = plain._batch(0, 0)[1]
    image, low_res, level = plain.super_resolution_example(x0, torch.Generator().manual_seed(0))
    difference, low_res_2, level_2 = residual.super_resolution_example(x0, torch.Generator().manual_seed(0))
    torch.testing.assert_close((low_res_2, level_2), (low_res, level))
    upsampled = upsample(torch.nn.functional.interpolate(x0, size=16, mode="area"), 32)
    crops = [(top, left) for top in range(17) for left in range(17)
             if torch.equal(image, x0[..., top:top + 16, left:left + 16])]
    assert len(crops) >= 1
    top, left = crops[0]
    torch.testing.assert_close(difference, image - upsampled[..., top:top + 16, left:left + 16])
    assert difference.abs().mean() < 0.5 * image.abs().mean()  # mostly zero away from edges
    residual.run()  # and it trains, predicting the clean difference itself
    with (residual_dir / "run" / "stage_2" / "loss.csv").open() as f:
        assert all(np.isfinite(float(row["loss"])) for row in csv.DictReader(f))


def test_assemble_reads_a_curve_whose_later_rows_have_more_columns(tmp_path, tiny_t5_dir):
    """A curve continued by a newer trainer (check-rate columns) has empty cells in its older rows: they are left out
    of training.json instead of failing the assembly."""
    recipe = load_recipe(write_recipe(tmp_path, tiny_t5_dir, base="steps = 1\neval_every = 1\neval_prompts_per_category = 1\neval_steps = 1"))
    train_stage(recipe, 1, show_progress=False)
    train_stage(recipe, 2, show_progress=False)
    curve = tmp_path / "run" / "stage_1" / "eval.csv"
    with curve.open() as f:
        first = next(csv.DictReader(f))
    append_row(curve, {**first, "step": 2, "ema_check_new": 0.5})
    record = json.loads((assemble(recipe) / "training.json").read_text())
    rows = record["stages"]["1"]["eval"]
    assert [row["step"] for row in rows] == [1, 2] and "ema_check_new" not in rows[0] and rows[1]["ema_check_new"] == 0.5
