"""What scripts/deploy_space.py would send to a Space, checked offline: every file the app needs (the app starts
from a copy of exactly that set and draws), and nothing the Hub refuses (over 10 MB outside LFS)."""

from __future__ import annotations

import subprocess
import sys

import httpx
from gradio_client import Client

from benchmarks.demo_load import running_app
from scripts import deploy_space

ROOT = deploy_space.ROOT


def test_nothing_the_hub_refuses_is_sent_and_the_weights_go_to_lfs(capsys):
    files, patterns = deploy_space.tracked_files(), deploy_space.lfs_patterns()
    assert {"app.py", "README.md", "requirements.txt", ".gitattributes", "reports/demo/run.json"} <= set(files)
    weights = [f for f in files if f.endswith(".safetensors")]
    assert "imagen_demo/weights/shapes-default/unet_1/diffusion_pytorch_model.safetensors" in weights
    assert all(deploy_space.in_lfs(f, patterns) for f in weights) and not deploy_space.in_lfs("app.py", patterns)
    assert deploy_space.too_big_outside_lfs(ROOT, files, patterns) == []
    assert deploy_space.main(["someone/imagen-demo", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert f"in {len(files)} files" in listed and "LFS  imagen_demo/weights/shapes-default/unet_2/" in listed


def test_the_app_starts_and_draws_from_a_copy_of_exactly_what_is_sent(tmp_path):
    copy = deploy_space.copy_files(ROOT, deploy_space.tracked_files(), tmp_path / "space")
    imported = subprocess.run([sys.executable, "-c", "import imagen_demo; print(imagen_demo.__file__)"], cwd=copy,
                              capture_output=True, text=True, check=True).stdout
    assert imported.startswith(str(copy))  # the copy's own package, not this checkout's
    with running_app([], tmp_path / "app.log", root=copy) as url:
        assert httpx.get(url, timeout=300).status_code == 200
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a busy machine answers slowly
        images, _, note, _ = client.predict(prompt="two green stars", seed=0, randomize_seed=False, steps_1=2,
                                            steps_2=1, api_name="/generate")
        assert len(images) == 1 and "seed 0" in note
        tables = client.predict(suite="shapes-test", limit=1, models="default@steps=1", name="from-the-copy",
                                api_name="/benchmark")[1]
        assert "shapes-test" in tables and (copy / "reports" / "from-the-copy" / "summary.csv").is_file()
