"""The README's and the docs' Python examples run as written, and their links lead somewhere (a README that lies is
a bug). The README is the front page; the examples that show the library at length live in docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "imagen_demo" / "weights" / "shapes-default" / "README.md"]


def python_block(page: Path, marker: str) -> str:
    """The page's ```python block that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)


def test_readme_example_runs(tmp_path, monkeypatch):
    example = python_block(README, 'from_pretrained("default")')
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["out"].images[0].size == (256, 256) and (tmp_path / "image.png").is_file()


def test_pipeline_doc_example_saves_and_reloads_through_diffusers(tmp_path, monkeypatch):
    example = python_block(DOCS / "pipeline.md", "save_pretrained")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/pipeline.md", "exec"), {})
    assert (tmp_path / "tiny.png").is_file() and (tmp_path / "tiny-imagen" / "model_index.json").is_file()


def test_shapes_world_example_runs():
    example = python_block(DOCS / "shapes-world.md", "sample_example")
    namespace: dict = {}
    exec(compile(example, "docs/shapes-world.md", "exec"), namespace)
    assert namespace["result"].passed
    assert namespace["parse_caption"]("红色圆形在蓝色正方形的左边") == namespace["parse_caption"]("a red circle to the left of a blue square")


def test_benchmark_doc_model_interface_example_runs():
    example = python_block(DOCS / "benchmark.md", "ModelRegistry()")
    namespace: dict = {}
    exec(compile(example, "docs/benchmark.md", "exec"), namespace)
    assert [image.size for image in namespace["images"]] == [(256, 256)]


def test_readme_commands_are_the_scripts_and_install_what_is_missing_first():
    text = README.read_text()
    assert "```bash\nbash scripts/test\n```" in text and "```bash\nbash scripts/demo\n```" in text
    for name, runs in (("test", '-m pytest -q "$@"'), ("demo", 'app.py "$@"')):
        script = (ROOT / "scripts" / name)
        body = script.read_text()
        assert script.stat().st_mode & 0o111 and runs in body
        assert body.index("bash scripts/install --if-missing") < body.index(runs)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("bash scripts/test")
    assert "bash scripts/fresh_clone_check" in text
    check = (ROOT / "scripts" / "fresh_clone_check").read_text()
    assert "bash scripts/test" in check and "bash scripts/demo" in check


def test_the_readme_is_a_front_page_and_every_link_leads_somewhere():
    assert len(README.read_text().splitlines()) <= 300
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if not target.startswith(("http://", "https://", "#")):
                assert (page.parent / target.split("#")[0]).exists(), (page.name, target)


def test_only_what_is_missing_is_installed(tmp_path):
    from scripts.missing_requirements import missing, pins

    requirements = [ROOT / f"requirements{part}.txt" for part in ("", "-nodeps", "-bench-speed")]
    assert ("gradio", "6.31.0") in pins(requirements[0]) and missing(requirements) == []  # this machine has them all
    (tmp_path / "more.txt").write_text("# a comment\ngradio==0.0.1  # another\nno-such-package-here==1.0\n")
    assert missing([tmp_path / "more.txt"]) == ["gradio==0.0.1 (found 6.31.0)",
                                                 "no-such-package-here==1.0 (not installed)"]
