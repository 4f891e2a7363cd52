"""The DrawBench-style benchmark: suites, resumable runner, metrics against torchmetrics, reports."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch

from benchmarks.cli import main
from imagen_demo.bench.manifest import MANIFEST_FILE, Manifest
from imagen_demo.bench.metrics import MetricUnavailable
from imagen_demo.bench.metrics.clip_score import ClipScorer, _ClipFeatures
from imagen_demo.bench.metrics.distances import distribution_distances, frechet_distance, kid_subset_size
from imagen_demo.bench.metrics.exact import verifier_scores
from imagen_demo.bench.metrics.features import feature_network
from imagen_demo.bench.metrics.fidelity import sr_fidelity
from imagen_demo.bench.metrics.pixels import unit_range_tensor
from imagen_demo.bench.metrics.statistics import bootstrap_ci
from imagen_demo.bench.references import reference_renders
from imagen_demo.bench.run import run_benchmark
from imagen_demo.bench.suite import builtin_suites, load_suite, round_robin
from imagen_demo.registry import ModelRegistry
from imagen_demo.shapes import Spec, parse_caption, test_suite, verify
from imagen_demo.shapes.captions import language_of
from imagen_demo.shapes.splits import recaption
from tiny import build_tiny_clip, build_tiny_stable_diffusion

DRAWBENCH_CATEGORIES = {"Colors", "Counting", "Positional", "Conflicting", "Descriptions", "Misspellings", "Rare Words",
                        "Text", "DALL-E", "Gary Marcus et al.", "Reddit"}


# ------------------------------------------------------------------------------------------ suites
def test_builtin_suites_cover_drawbench_and_the_shapes_test_split():
    assert {"drawbench-style", "shapes-test"} <= set(builtin_suites())
    drawbench = load_suite("drawbench-style")
    assert 190 <= len(drawbench) <= 210 and {i.category for i in drawbench} == DRAWBENCH_CATEGORIES
    shapes = load_suite("shapes-test")
    assert len(shapes) == 120 and all(item.spec for item in shapes)
    for item in shapes[::10]:  # every spec is a real, satisfiable scene: its true render verifies
        assert verify(Spec.from_dict(item.spec), reference_renders(item.spec, 0, 64)).passed
    held_out = {json.dumps(r["spec"], sort_keys=True) for r in test_suite(40, seed=0)}
    assert all(json.dumps(item.spec, sort_keys=True) in held_out for item in shapes)



def test_shapes_test_zh_is_shapes_test_captioned_in_chinese():
    english, chinese = load_suite("shapes-test"), load_suite("shapes-test-zh")
    assert [(i.category, i.spec) for i in chinese] == [(i.category, i.spec) for i in english]
    assert all(language_of(i.prompt) == "zh" and parse_caption(i.prompt) == Spec.from_dict(i.spec) for i in chinese)
    rows = [{"prompt": i.prompt, "category": i.category, "spec": i.spec} for i in english]
    assert [i.prompt for i in chinese] == [r["prompt"] for r in recaption(rows, "zh", seed=0)]  # how it was written

def test_official_drawbench_csv_and_partiprompts_tsv_load(tmp_path):
    drawbench = tmp_path / "drawbench.csv"
    drawbench.write_text('Prompts,Category\n"A red colored car.",Colors\nA black apple and a green backpack.,Colors\n'
                         "Three cats and two dogs sitting on the grass.,Counting\n")
    parti = tmp_path / "PartiPrompts.tsv"
    parti.write_text("Prompt\tCategory\tChallenge\tNote\nbond\tAbstract\tBasic\t\na tiger\tAnimals\tBasic\tnote\n")
    items = load_suite(drawbench)
    assert [i.category for i in items] == ["Colors", "Colors", "Counting"] and items[0].prompt == "A red colored car."
    assert [(i.prompt, i.category) for i in load_suite(parti)] == [("bond", "Abstract"), ("a tiger", "Animals")]
    assert [i.category for i in load_suite(drawbench, limit=2)] == ["Colors", "Counting"]  # round-robin


@pytest.mark.parametrize("content, message", [
    ("prompt,category\n,Colors\n", ":2: empty prompt"),
    ("prompt,category\na cat,Animals\na cat,Animals\n", ":3: repeats line 2"),
    ("prompt,category,spec\na cat,Animals,{not json\n", "spec column is not JSON"),
    ("prompt,category\n", "no prompts"),
])
def test_bad_suites_name_the_line(tmp_path, content, message):
    path = tmp_path / "suite.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_suite(path)
    with pytest.raises(FileNotFoundError, match="built-in suites are"):
        load_suite(tmp_path / "nope.csv")


def test_item_ids_follow_content_and_limits_cover_categories():
    items = load_suite("shapes-test")
    assert len({i.id for i in items}) == len(items)
    picked = round_robin(items, 13)
    assert len(picked) == 13 and len({i.category for i in picked}) == 6


# ----------------------------------------------------------------------------------------- metrics
@pytest.fixture(scope="module")
def shape_images():
    rows = test_suite(2, seed=0)
    return ([reference_renders(r["spec"], 0, 64) for r in rows],
            [reference_renders(r["spec"], 1, 64) for r in rows], [r["prompt"] for r in rows])


@pytest.fixture(scope="module")
def effnet():
    return feature_network("efficientnet-lite0")


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_frechet_and_kernel_distances_match_torchmetrics(shape_images, effnet):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b, _ = shape_images
    fa, fb = effnet.embed(a), effnet.embed(b)
    ours = {row["metric"]: row for row in distribution_distances(fa, fb, effnet.label, fid_resamples=50)}
    assert set(ours) == {"FD-EfficientNet-Lite0", "KD-EfficientNet-Lite0"}  # only Inception features may be called FID
    fd, kd = ours["FD-EfficientNet-Lite0"], ours["KD-EfficientNet-Lite0"]
    fid = FrechetInceptionDistance(feature=effnet, normalize=True)
    kid = KernelInceptionDistance(feature=effnet, normalize=True, subset_size=kid_subset_size(len(a)))
    for metric in (fid, kid):
        metric.update(unit_range_tensor(b), real=True)
        metric.update(unit_range_tensor(a), real=False)
    torch.manual_seed(0)  # the subsets distribution_distances draws
    kid_mean, kid_std = kid.compute()
    assert fd["value"] == pytest.approx(float(fid.compute()), rel=1e-4) and fd["value"] > 1.0
    # the n × n form behind the bootstrap is the same distance as torchmetrics' d × d one
    assert frechet_distance(fa, fb) == pytest.approx(fd["value"], rel=1e-4)
    assert (kd["value"], kd["std"]) == (pytest.approx(float(kid_mean), rel=1e-4, abs=1e-6), pytest.approx(float(kid_std), rel=1e-4))
    assert fd["ci_low"] < fd["value"] < fd["ci_high"] and fd["resamples"] == 50
    assert fd["n"] == fd["n_reference"] == kd["n"] == len(a)
    itself = distribution_distances(fa, fa, effnet.label, fid_resamples=0)[0]
    assert abs(itself["value"]) < 1e-2 and math.isnan(itself["ci_low"])


def test_psnr_ssim_match_torchmetrics(shape_images):
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    a, b, _ = shape_images
    ours = sr_fidelity(a[:3], b[:3])
    for (x, y), got in zip(zip(a[:3], b[:3]), ours):
        psnr, ssim = PeakSignalNoiseRatio(data_range=1.0), StructuralSimilarityIndexMeasure(data_range=1.0)
        pred, target = unit_range_tensor([x]), unit_range_tensor([y])
        assert got["psnr_sr"] == pytest.approx(float(psnr(pred, target)), rel=1e-5)
        assert got["ssim_sr"] == pytest.approx(float(ssim(pred, target)), rel=1e-5)
    assert sr_fidelity([a[0]], [a[0]])[0]["ssim_sr"] == pytest.approx(1.0)


def test_clip_score_matches_torchmetrics_per_image(tmp_path, shape_images):
    from torchmetrics.multimodal import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    folder = build_tiny_clip(tmp_path / "clip")
    a, _, prompts = shape_images
    ours = ClipScorer(str(folder))(a, prompts)
    model, processor = _ClipFeatures(CLIPModel.from_pretrained(folder)), CLIPProcessor.from_pretrained(folder)
    for image, prompt, got in zip(a, prompts, ours):
        reference = CLIPScore(model_name_or_path=lambda: (model, processor))
        reference.update((unit_range_tensor([image])[0] * 255).to(torch.uint8), prompt)
        assert got == pytest.approx(float(reference.compute()), abs=1e-4)
    assert all(0 <= v <= 100 for v in ours) and len(set(ours)) > 1


def test_open_clip_scores_with_local_weights(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    config = tmp_path / "tiny-clip-test.json"
    config.write_text(json.dumps({
        "embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip-test")
    save_file(model.state_dict(), tmp_path / "weights.safetensors")
    scorer = ClipScorer(f"open_clip:tiny-clip-test:{tmp_path / 'weights.safetensors'}")
    images = [PIL.Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    with torch.no_grad():
        _, _, preprocess = open_clip.create_model_and_transforms("tiny-clip-test")
        image = model.encode_image(torch.stack([preprocess(im) for im in images]))
        text = model.encode_text(open_clip.get_tokenizer("tiny-clip-test")(["a red square", "a blue square"]))
    expected = (100 * torch.cosine_similarity(image, text).clamp(min=0)).tolist()
    assert scorer(images, ["a red square", "a blue square"]) == pytest.approx(expected, abs=1e-4)


def test_missing_clip_weights_are_a_sentence_not_a_crash(tmp_path):
    with pytest.raises(MetricUnavailable, match="CLIP score skipped: .*nowhere"):
        ClipScorer(str(tmp_path / "nowhere"))


def test_bootstrap_intervals():
    mean, low, high = bootstrap_ci([0, 1] * 50)
    assert mean == 0.5 and 0.38 < low < 0.45 and 0.55 < high < 0.62
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0, 1.0)
    assert np.isnan(bootstrap_ci([0.3])[1])


def test_verifier_scores_true_and_wrong_pictures(shape_images):
    a, _, _ = shape_images
    rows = test_suite(2, seed=0)
    assert verifier_scores(a[0], rows[0]["spec"]) == {"exact": 1.0, "checks": 1.0}
    blank = PIL.Image.new("RGB", (64, 64), "white")
    assert verifier_scores(blank, rows[0]["spec"])["exact"] == 0.0


# ------------------------------------------------------------------------------ runner and report
@pytest.fixture
def shapes_suite(tmp_path):
    path = tmp_path / "suite.jsonl"
    rows = test_suite(1, seed=0)[:4]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_interrupted_run_resumes_and_edited_suite_regenerates_only_changes(tmp_path, tiny_pipe, shapes_suite):
    registry = ModelRegistry("cpu")
    registry.add("tiny", tiny_pipe)
    out, made = tmp_path / "run", []

    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt

    kwargs = dict(seeds=[0, 1], batch_size=2, sr_limit=0, registry=registry, progress=False, clip="none", features="none")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(shapes_suite, "tiny@steps=2,tiny@steps=1", out, on_image=interrupt, **kwargs)
    done = dict(Manifest(out).entries)
    assert len(done) == 5
    mtimes = {e["image"]: (out / e["image"]).stat().st_mtime_ns for e in done.values()}
    with open(out / MANIFEST_FILE, "a") as f:
        f.write('{"key": "half a line from a kil')  # a kill in the middle of a write
    run_benchmark(shapes_suite, "tiny@steps=2,tiny@steps=1", out, on_image=lambda d, t: made.append(t), **kwargs)
    assert made == [2 * 4 * 2 - 5] * (2 * 4 * 2 - 5)  # only the missing images were planned and made
    assert all((out / image).stat().st_mtime_ns == t for image, t in mtimes.items())

    lines = shapes_suite.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["prompt"] = edited["prompt"] + " please"
    shapes_suite.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    before = set(Manifest(out).entries)
    result = run_benchmark(shapes_suite, "tiny@steps=2,tiny@steps=1", out, **kwargs)
    new = [e for k, e in Manifest(out).entries.items() if k not in before]
    assert sorted(e["prompt"] for e in new) == [edited["prompt"]] * 4  # 2 models x 2 seeds of the changed line
    results = pd.read_csv(out / "results.csv")
    assert len(results.drop_duplicates(["model", "item", "seed"])) == 16  # the old line is out of the tables
    assert result["summary"].query("metric == 'exact' and category == 'overall'")["n"].tolist() == [8, 8]


def test_report_names_every_model_and_category_and_rebuilds_without_sampling(tmp_path, tiny_pipe_dir, shapes_suite):
    out = tmp_path / "report"
    models = f"{tiny_pipe_dir}@steps=2,{tiny_pipe_dir}@steps=1,scheduler=ddim"
    clip = build_tiny_clip(tmp_path / "clip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", "--suite", str(shapes_suite), "--models", models, "--out", str(out), "--seeds", "0",
                     "--sr-limit", "2", "--clip", str(clip), "--features", "efficientnet-lite0"]) == 0
    files = {p: (out / p).stat().st_mtime_ns for p in ("results.csv", "summary.csv", "report.md", "report.html")}
    summary = pd.read_csv(out / "summary.csv")
    names = [f"{tiny_pipe_dir}@steps=2", f"{tiny_pipe_dir}@steps=1,scheduler=ddim"]
    assert set(summary["model"]) == set(names)
    assert {"exact", "checks", "clip_score", "psnr_sr", "ssim_sr", "seconds", "FD-EfficientNet-Lite0",
            "KD-EfficientNet-Lite0"} <= set(summary["metric"])
    results = pd.read_csv(out / "results.csv")
    assert len(results.query("metric == 'exact'")) == 8 and len(results.query("metric == 'psnr_sr'")) == 4
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    categories = {json.loads(line)["category"] for line in shapes_suite.read_text().splitlines()}
    for text in (md, page):
        assert all(name in text for name in names) and all(c in text for c in categories)
    assert "src='data:image/png;base64," in page and "src='http" not in page  # self-contained
    assert "(n = 4, ref 4)" in md and "Read FD-EfficientNet-Lite0 as a number only from n ≥ 1280" in md
    assert (out / "plots" / "exact.png").is_file() and (out / "grid.png").is_file()

    manifest = (out / MANIFEST_FILE).read_text()
    (out / "report.html").unlink()
    assert main(["report", str(out), "--clip", "none", "--features", "none"]) == 0
    assert (out / "report.html").is_file() and (out / MANIFEST_FILE).read_text() == manifest
    assert "no CLIP model given" in (out / "report.md").read_text()
    assert all((out / p).stat().st_mtime_ns != t for p, t in files.items() if p != "report.html")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--suite", "nope", "--models", "default", "--out", str(tmp_path)]) == 2
    assert "no suite 'nope'" in capsys.readouterr().err
    assert main(["run", "--suite", "shapes-test", "--models", "default@stpes=3", "--out", str(tmp_path)]) == 2
    assert "unknown setting 'stpes'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a benchmark run folder" in capsys.readouterr().err


def test_a_stable_diffusion_pipeline_runs_beside_the_imagen_cascade(tmp_path, tiny_pipe_dir, shapes_suite):
    """One path for every diffusers pipeline: a Stable Diffusion folder made of diffusers' classes (random weights),
    sampled with a scheduler that has no thresholding, beside an Imagen cascade in one run."""
    sd = build_tiny_stable_diffusion(tmp_path / "sd")
    models = f"{tiny_pipe_dir}@steps=2,{sd}@steps=2,guidance=3,scheduler=EulerDiscreteScheduler"
    out = tmp_path / "run"
    assert main(["run", "--suite", str(shapes_suite), "--models", models, "--out", str(out), "--seeds", "0",
                 "--sr-limit", "1", "--clip", "none", "--features", "none"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert [m["pipeline_class"] for m in run["models"]] == ["ImagenPipeline", "StableDiffusionPipeline"]
    results = pd.read_csv(out / "results.csv")
    exact = results.query("metric == 'exact'")
    assert exact.groupby("model")["item"].count().to_dict() == {f"{tiny_pipe_dir}@steps=2": 4, models.split(",", 1)[1]: 4}
    assert len(results.query("metric == 'psnr_sr'")) == 1  # super-resolution is measured for the cascade alone
