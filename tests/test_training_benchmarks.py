"""The training benchmarks: throughput side by side, SR against bicubic, and the learning-curve plot."""

from __future__ import annotations

import csv
import json

import numpy as np
import PIL.Image
import pytest

from benchmarks import learning_curve, sr_fidelity, train_parallelism, train_throughput
from test_training import write_recipe


def test_throughput_measures_every_stage_of_every_recipe(tmp_path, tiny_t5_dir):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = write_recipe(tmp_path / "a", tiny_t5_dir)
    second = write_recipe(tmp_path / "b", tiny_t5_dir, base='overrides = {patch_size = 2}\nchannels_last = true')
    rows = train_throughput.measure([str(first), str(second)], steps=1, rounds=2)
    assert [(r["recipe"], r["stage"], r["batch"]) for r in rows] == [
        (str(first), 1, 8), (str(first), 2, 4), (str(second), 1, 8), (str(second), 2, 4)]
    assert all(r["images_per_s"] > 0 and r["parameters"] > 0 for r in rows)
    assert rows[0]["parameters"] != rows[2]["parameters"]  # the patched U-Net has another first and last conv
    assert not (tmp_path / "a" / "run").exists()  # measured in a throw-away folder
    table = train_throughput.markdown(rows)
    assert table.count("| tiny-base |") == 2 and table.count("| tiny-sr |") == 2


def test_parallelism_runs_the_training_command_in_each_layout(tmp_path, tiny_t5_dir):
    recipe = write_recipe(tmp_path, tiny_t5_dir, base="steps = 100000\neval_every = 5")
    rate = train_parallelism.run_layout(recipe, 1, 1, 1, minutes=0.1, init_from=None, folder=tmp_path / "one")
    assert rate > 0 and (tmp_path / "one" / "stage_1" / "final").is_dir()
    assert "eval_every = 0" in (tmp_path / "one.toml").read_text()  # timed: training steps only
    assert not (tmp_path / "run").exists()  # the recipe's own run folder is left alone
    assert train_parallelism.layout("2x1") == (2, 1)
    with pytest.raises(Exception, match="PROCESSESxTHREADS"):
        train_parallelism.layout("2")


def test_true_renders_have_no_speckle_and_bicubic_is_the_baseline(tiny_pipe):
    scenes = sr_fidelity.true_renders(3, 64)
    for _, image, background in scenes:
        assert background.mean() > 0.3 and sr_fidelity.speckle(image, background) == 0.0
    noisy = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert sr_fidelity.speckle(noisy, scenes[0][2]) > 50

    rows = sr_fidelity.evaluate(tiny_pipe, 2, [{}, {"steps": 1, "noise_aug": 0.0, "guidance": 1.0}])
    assert [r["method"] for r in rows] == ["bicubic", "SR stage (defaults)", "SR stage (steps=1, noise_aug=0.0, guidance=1.0)"]
    bicubic, *sr = rows
    assert bicubic["psnr"] > 20 and bicubic["speckle"] < 1.0 and bicubic["seconds"] is None
    assert all(r["psnr"] < bicubic["psnr"] and r["speckle"] > bicubic["speckle"] for r in sr)  # an untrained SR stage
    assert "| bicubic |" in sr_fidelity.markdown(rows)


def test_learning_curve_reads_logs_and_records_and_plots(tmp_path):
    columns = ["step", "images_seen", "train_hours"] + [f"{w}_{c}" for w in ("ema", "raw") for c in
                                                         ("single_object", "colors", "overall")]
    rows = [dict(zip(columns, [i * 10, i * 320, i / 10] + [i / 4] * 6)) for i in (1, 2, 3)]
    log = tmp_path / "eval.csv"
    with log.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    record = tmp_path / "training.json"
    record.write_text(json.dumps({"stages": {"1": {"eval": [rows[0], {**rows[1], "ema_check_shape": 0.5}]}}}))
    curves = {"log": learning_curve.load_curve(log), "record": learning_curve.load_curve(record)}
    assert curves["record"]["ema_check_shape"].notna().sum() == 1  # a curve begun before the check columns
    assert list(curves["log"]["images_seen"]) == [320, 640, 960] and len(curves["record"]) == 2
    out = learning_curve.plot(curves, tmp_path / "curve.png")
    assert PIL.Image.open(out).size[0] > 500
    table = learning_curve.markdown(curves)
    assert "| log | 30 | 960 | 0.30 | 0.75 | 0.75 | 0.75 |" in table
    with pytest.raises(ValueError, match="no evaluation rows"):
        learning_curve.load_curve(record, stage=2)


def test_denoising_accuracy_is_perfect_for_an_oracle_and_low_for_an_untrained_unet(tiny_encoder):
    from types import SimpleNamespace

    import torch

    from benchmarks.denoising_accuracy import denoising_accuracy
    from imagen_demo.core.sampling import Stage
    from imagen_demo.core.presets import unet_from_preset
    from imagen_demo.core.schedulers import training_scheduler

    class NoiseOracle(torch.nn.Module):
        """Predicts exactly the noise the benchmark draws (seeded by the timestep): x0 comes back exact."""
        config = SimpleNamespace(prediction_type="epsilon", sample_size=64)

        def forward(self, noisy, t, *text):
            return torch.randn(noisy.shape, generator=torch.Generator().manual_seed(int(t[0])))

    scheduler = training_scheduler("squaredcos_cap_v2", "epsilon")
    oracle = denoising_accuracy(Stage(NoiseOracle(), scheduler), tiny_encoder, [400, 900], per_category=2)
    assert [r["t"] for r in oracle] == [400, 900]
    assert all(r["pass"] == 1.0 and r["mse"] < 1e-8 and r["shape"] == 1.0 for r in oracle)
    untrained = unet_from_preset("tiny-base", sample_size=64, text_embed_dim=tiny_encoder.dim)
    (row,) = denoising_accuracy(Stage(untrained, scheduler), tiny_encoder, [900], per_category=2)
    assert row["pass"] < 0.5 and row["mse"] > 0.01 and row["snr"] < 0.1
