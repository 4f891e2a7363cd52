"""benchmarks.shapes_accuracy: a model that draws the truth scores 1, a random tiny model does not."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from PIL import Image

from benchmarks.shapes_accuracy import (
    FAIL_COLOUR, PASS_COLOUR, POSITION_PARTS, accuracy_table, evaluate, sample_grid, stage_disagreements, summarise,
)
from imagen_demo.shapes import CATEGORIES, parse_caption, render, sample_scene, test_suite


class TruthfulPipe:
    """Renders the scene each prompt describes: what a perfect two-stage text-to-image model would return."""

    def __call__(self, prompt, seed, return_intermediates):
        scene = sample_scene(parse_caption(prompt), np.random.default_rng(seed))
        images = [render(scene, 64), render(scene, 256)]
        return SimpleNamespace(images=images[-1:], stage_images=[[im] for im in images])


def test_a_perfect_model_scores_one_in_every_category():
    report = evaluate(TruthfulPipe(), test_suite(2, seed=1), progress=False)
    for stage in ("stage_1", "stage_2"):
        accuracy = {k: v for k, v in report["accuracy"][stage].items() if k not in POSITION_PARTS}
        assert accuracy == {**{c: 1.0 for c in CATEGORIES}, "overall": 1.0}
    assert len(report["rows"]) == 2 * len(CATEGORIES) and report["seconds_per_image"] > 0
    table = accuracy_table(report, [64, 256])
    assert "| overall | 1.00 [1.00, 1.00] | 1.00 [1.00, 1.00] |" in table and all(c in table for c in CATEGORIES)
    grid = sample_grid(report, per_category=2, side=64)
    assert grid.size == (128, len(CATEGORIES) * (64 + 28))
    assert np.asarray(grid)[:64, :64].std() > 0  # the first category's first image, pasted
    assert tuple(np.asarray(grid)[1, 30]) == PASS_COLOUR  # framed as passed
    report["rows"][0]["stage_2"] = False
    assert tuple(np.asarray(sample_grid(report, per_category=2, side=64))[1, 30]) == FAIL_COLOUR


def test_each_accuracy_comes_with_its_bootstrap_interval():
    report = evaluate(TruthfulPipe(), test_suite(4, seed=1), progress=False)
    report["rows"][0]["stage_1"] = False  # one miss among 4 prompts of the first category
    first = report["rows"][0]["category"]
    report = {**report, **summarise(report["rows"])}
    mean, (low, high) = report["accuracy"]["stage_1"][first], report["interval"]["stage_1"][first]
    assert mean == 0.75 and low < 0.75 <= high == 1.0
    assert report["interval"]["stage_2"][first] == [1.0, 1.0]
    assert f"| {first} | 0.75 [{low:.2f}, 1.00] | 1.00 [1.00, 1.00] |" in accuracy_table(report, [64, 256])


def test_absolute_positions_and_relations_are_reported_apart():
    report = evaluate(TruthfulPipe(), test_suite(8, seed=1), progress=False)
    for row in report["rows"]:
        row["stage_2"] = not row["relation"]  # the last stage gets every relation wrong
    report = {**report, **summarise(report["rows"])}
    parts = report["accuracy"]["stage_2"]
    assert parts["position: absolute"] == 1.0 and parts["position: relation"] == 0.0
    assert 0 < parts["position"] < 1 and report["accuracy"]["stage_1"]["position: relation"] == 1.0
    assert "| position: relation | 1.00 [1.00, 1.00] | 0.00 [0.00, 0.00] |" in accuracy_table(report, [64, 256])


class BlankUpscalerPipe(TruthfulPipe):
    """A true base image followed by a super-resolution stage that paints everything white."""

    def __call__(self, prompt, seed, return_intermediates):
        out = super().__call__(prompt, seed, return_intermediates)
        out.stage_images[-1] = [Image.new("RGB", (256, 256), "white")]
        return out


def test_the_prompts_the_last_stage_loses_are_listed_with_the_checks_it_failed():
    report = evaluate(BlankUpscalerPipe(), test_suite(1, seed=1), progress=False)
    lost, gained = report["disagreements"]["lost"], report["disagreements"]["gained"]
    assert len(lost) == len(CATEGORIES) and gained == []
    assert all(row["failed"] and all(":" in check for check in row["failed"]) for row in lost)
    assert all(row["failed_checks"]["stage_1"] == [] for row in report["rows"])
    assert all(row["bicubic_passes"] for row in lost)  # the true 64 px render, upsampled, still passes
    assert stage_disagreements([{**row, "bicubic_first_stage": False} for row in report["rows"]])["lost"][0][
        "bicubic_passes"] is False
    swapped = [{**row, "stage_1": row["stage_2"], "stage_2": row["stage_1"]} for row in report["rows"]]
    assert stage_disagreements(swapped) == {"lost": [], "gained": [{"prompt": r["prompt"], "category": r["category"]}
                                                                   for r in report["rows"]]}


def test_a_random_model_fails_the_verifier(tiny_pipe):
    report = evaluate(tiny_pipe, test_suite(1, seed=0), progress=False)
    assert report["accuracy"]["stage_2"]["overall"] < 0.5


def test_settings_after_the_at_sign_reach_every_pipeline_call(tiny_pipe_dir, capsys, monkeypatch):
    from benchmarks import shapes_accuracy
    from imagen_demo import ImagenPipeline

    calls = []
    original = ImagenPipeline.__call__

    @functools.wraps(original)  # the registry reads the settings a pipeline takes from its signature
    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ImagenPipeline, "__call__", recording)
    shapes_accuracy.main(["--model", f"{tiny_pipe_dir}@guidance=3/1,steps=2", "--n-per-category", "1"])
    assert len(calls) == len(CATEGORIES)
    assert all(c["guidance_scale"] == [3.0, 1.0] and c["num_inference_steps"] == 2 for c in calls)
    assert "overridden {'guidance_scale': [3.0, 1.0], 'num_inference_steps': 2}" in capsys.readouterr().out
