"""The README's Python example runs as written (a README that lies is a bug)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "save_pretrained" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "tiny.png").is_file() and (tmp_path / "tiny-imagen" / "model_index.json").is_file()


def test_readme_shapes_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "sample_example" in b)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["result"].passed
    assert namespace["parse_caption"]("红色圆形在蓝色正方形的左边") == namespace["parse_caption"]("a red circle to the left of a blue square")


def test_readme_model_interface_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "ModelRegistry()" in b)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert [image.size for image in namespace["images"]] == [(256, 256)]


def test_readme_commands_are_the_scripts_and_install_what_is_missing_first():
    root = README.parent
    text = README.read_text()
    assert "```bash\nbash scripts/test\n```" in text and "```bash\nbash scripts/demo\n```" in text
    for name, runs in (("test", '-m pytest -q "$@"'), ("demo", 'app.py "$@"')):
        script = (root / "scripts" / name)
        body = script.read_text()
        assert script.stat().st_mode & 0o111 and runs in body
        assert body.index("bash scripts/install --if-missing") < body.index(runs)
    assert (root / ".ci" / "run").read_text().rstrip().endswith("bash scripts/test")
    check = (root / "scripts" / "fresh_clone_check").read_text()
    assert "bash scripts/test" in check and "bash scripts/demo" in check


def test_only_what_is_missing_is_installed(tmp_path):
    from scripts.missing_requirements import missing, pins

    root = README.parent
    requirements = [root / f"requirements{part}.txt" for part in ("", "-nodeps", "-bench-speed")]
    assert ("gradio", "6.31.0") in pins(requirements[0]) and missing(requirements) == []  # this machine has them all
    (tmp_path / "more.txt").write_text("# a comment\ngradio==0.0.1  # another\nno-such-package-here==1.0\n")
    assert missing([tmp_path / "more.txt"]) == ["gradio==0.0.1 (found 6.31.0)",
                                                 "no-such-package-here==1.0 (not installed)"]
