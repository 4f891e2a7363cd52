"""python -m imagen_demo generate, run in-process on a saved tiny pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image

from imagen_demo.cli import main
from imagen_demo.core.loading import SHIPPED_MODELS

ROOT = Path(__file__).resolve().parent.parent


def test_generate_writes_every_image_and_stage(tiny_pipe_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    args = ["generate", "a red circle", "--model", str(tiny_pipe_dir), "--seed", "4", "--steps", "2,1",
            "--guidance", "3,1", "--scheduler", "ddim", "--num-images", "2", "--save-stages", "--out", str(out)]
    assert main(args) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["x-0.png", "x-0.stage1.png", "x-1.png", "x-1.stage1.png"]
    assert PIL.Image.open(tmp_path / "x-0.png").size == (32, 32)
    assert PIL.Image.open(tmp_path / "x-0.stage1.png").size == (16, 16)
    assert "seed 4" in capsys.readouterr().out
    again = tmp_path / "again" / "y.png"
    assert main(args[:-1] + [str(again)]) == 0
    first = np.asarray(PIL.Image.open(tmp_path / "x-1.png"))
    assert np.array_equal(first, np.asarray(PIL.Image.open(again.with_name("y-1.png"))))


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(SHIPPED_MODELS, "default", tmp_path / "deleted")
    assert main(["generate", "a red circle", "--out", str(tmp_path / "x.png")]) == 2
    assert "shipped model 'default' is missing" in capsys.readouterr().err
    assert main(["generate", "a red circle", "--model", str(tmp_path / "missing")]) == 2
    assert "not available on this machine" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_help_and_argument_errors_do_not_import_torch():
    """`generate --help` took seconds when the CLI imported the training stack at module top."""
    heavy = ("torch", "diffusers", "transformers")
    for args, code in ((["generate", "--help"], 0), (["generate"], 2), (["train", "--stage", "x"], 2)):
        script = ("import sys\nfrom imagen_demo.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit:\n"
                  f"    print(exit.code, sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))")
        proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.stdout.splitlines()[-1] == f"{code} []", (args, proc.stdout, proc.stderr)


def test_the_package_exports_load_on_first_use():
    script = "import sys, imagen_demo; assert 'torch' not in sys.modules; from imagen_demo import ImagenPipeline; print(ImagenPipeline.__name__)"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.strip() == "ImagenPipeline", proc.stderr
