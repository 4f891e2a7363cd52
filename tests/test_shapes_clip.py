"""shapes-CLIP: it trains, resumes and reloads from safetensors, scores as the benchmark expects, is the offline
default for suites with scene specs, and the shipped weights retrieve held-out prompts from their true renders."""

from __future__ import annotations

import json
import math

import pandas as pd
import PIL.Image
import pytest
from safetensors import safe_open

from imagen_demo.bench.metrics import MetricUnavailable
from imagen_demo.bench.metrics.clip_score import ClipScorer, HUB_CLIP, clip_cache_key, resolve_clip
from imagen_demo.bench.metrics.shapes_clip import SHIPPED, ShapesClip
from imagen_demo.bench.references import reference_renders
from imagen_demo.bench.run import build_report, run_benchmark
from imagen_demo.bench.shapes_clip.quality import retrieval, verifier_agreement
from imagen_demo.bench.shapes_clip.train import LOSS_FILE, Recipe, train
from imagen_demo.bench.suite import load_suite
from imagen_demo.registry import ModelRegistry
from imagen_demo.shapes import test_suite
from imagen_demo.shapes.captions import english_caption

TINY = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
        "text_cfg": {"context_length": 20, "width": 32, "heads": 2, "layers": 1}}
PROMPTS = ["a red circle above a blue square", "two green stars"]


def tiny_recipe(folder, steps: int = 2) -> Recipe:
    return Recipe(model=TINY, output=str(folder / "out"), run_dir=str(folder / "run"), batch_size=8, steps=steps,
                  checkpoint_every=1, warmup_steps=1)


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return train(tiny_recipe(tmp_path_factory.mktemp("shapes_clip")), log=lambda *_: None)


@pytest.fixture
def no_hub_clip(monkeypatch):
    """A machine without the hub: the hub CLIP is in no cache."""
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)


def images(n: int = 2) -> list[PIL.Image.Image]:
    return [reference_renders(row["spec"], 0, 64) for row in test_suite(1, seed=0)[:n]]


def test_trains_resumes_and_reloads_from_safetensors_only(tmp_path, tiny_clip_dir):
    assert sorted(p.name for p in tiny_clip_dir.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tiny_clip_dir / "config.json").read_text())
    assert config["training"]["steps"] == 2 and config["training"]["images_seen"] == 16
    loaded = ShapesClip.load(tiny_clip_dir)
    with safe_open(tiny_clip_dir / "model.safetensors", "pt") as f:
        assert all(loaded.model.state_dict()[k].equal(f.get_tensor(k)) for k in f.keys())

    recipe = tiny_recipe(tmp_path)
    train(recipe, log=lambda *_: None)
    with pytest.raises(ValueError, match="pass --resume"):
        train(recipe, log=lambda *_: None)
    recipe.steps = 3
    logged = []
    train(recipe, resume=True, log=logged.append)
    assert logged[0].startswith("resumed at step 2")
    assert pd.read_csv(tmp_path / "run" / LOSS_FILE)["step"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="another model"):
        train(Recipe(**{**recipe.__dict__, "model": {**TINY, "embed_dim": 8}}), resume=True, log=lambda *_: None)


def test_it_reads_only_the_grammar_and_chinese_through_its_english_caption(tiny_clip_dir):
    clip = ShapesClip.load(tiny_clip_dir)
    assert clip.reads(PROMPTS[0]) and not clip.reads("a teal giraffe") and clip.reads("一个红色的圆形")
    english = clip.similarity(images(1), [english_caption("一个红色的圆形")])
    assert clip.similarity(images(1), ["一个红色的圆形"]).equal(english)


def test_the_scorer_is_named_shapes_clip_and_gives_the_clip_score(tiny_clip_dir):
    scorer = ClipScorer(f"shapes-clip:{tiny_clip_dir}")
    assert scorer.label == "shapes-CLIP"
    cos = ShapesClip.load(tiny_clip_dir).cosine(images(), PROMPTS)
    assert scorer(images(), PROMPTS) == pytest.approx((100 * cos.clamp(min=0)).tolist(), abs=1e-4)
    assert math.isnan(scorer(images(1), ["a teal giraffe"])[0])  # a number for it would mean nothing
    key = clip_cache_key(f"shapes-clip:{tiny_clip_dir}")
    assert key.startswith("clip:shapes-clip@") and key != clip_cache_key("shapes-clip")
    with pytest.raises(MetricUnavailable, match="no shapes-CLIP weights"):
        ClipScorer(f"shapes-clip:{tiny_clip_dir / 'nowhere'}")


def test_auto_is_the_hub_clip_where_it_is_cached_else_shapes_clip_for_shapes_suites(monkeypatch, no_hub_clip):
    import huggingface_hub

    assert resolve_clip("auto", shapes=True) == "shapes-clip"
    assert resolve_clip("auto", shapes=False) is None
    assert resolve_clip("open_clip:ViT-B-32:w.safetensors", shapes=True) == "open_clip:ViT-B-32:w.safetensors"
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: "/cache/config.json")
    assert resolve_clip("auto", shapes=True) == HUB_CLIP


def test_shipped_weights_retrieve_held_out_prompts_from_true_renders():
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 20 * 2**20
    result = retrieval(ShapesClip.load(), load_suite("shapes-test"))  # 120 prompts, seeds 0..119: R@1 0.908
    assert result["n"] == 120 and result["recall_at_1"] >= 0.9
    assert result["matched_above_mismatched"] >= 0.95


def test_a_shapes_run_reports_the_shapes_clip_score_per_category_by_default(tmp_path, tiny_pipe, no_hub_clip):
    registry = ModelRegistry("cpu")
    registry.add("tiny", tiny_pipe)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(row) + "\n" for row in test_suite(1, seed=0)[:3]))
    out = tmp_path / "run"
    result = run_benchmark(suite, "tiny@steps=2", out, sr_limit=0, registry=registry, progress=False, features="none")
    clip = result["summary"].query("metric == 'clip_score'")
    assert len(clip) == 4 and set(clip["category"]) == {*(row["category"] for row in test_suite(1, seed=0)[:3]), "overall"}
    md = (out / "report.md").read_text()
    assert "## CLIP score (shapes-CLIP), 100·max(cos, 0)" in md and "OpenAI" not in md
    assert "CLIP score (shapes-CLIP): " in (out / "report.html").read_text()  # under each picture
    (out / "report.md").unlink()
    build_report(out, features="none")
    assert "## CLIP score (shapes-CLIP)" in (out / "report.md").read_text()
    agreement = verifier_agreement(out, "shapes-clip")
    assert agreement["n"] == 3 and 0 <= agreement["mean_failing"] <= 100

    other = tmp_path / "drawbench.csv"
    other.write_text("prompt,category\na teal giraffe,Colors\n")
    result = run_benchmark(other, "tiny@steps=2", tmp_path / "other", sr_limit=0, registry=registry, progress=False,
                           features="none")
    assert "clip_score" not in set(result["summary"]["metric"])
    assert any("shapes-CLIP, the offline default, reads only shapes-world prompts" in n for n in result["notes"])
