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


def test_readme_test_command_is_the_script_ci_runs():
    root = README.parent
    assert "```bash\nbash scripts/test\n```" in README.read_text()
    script = root / "scripts" / "test"
    assert script.stat().st_mode & 0o111 and 'python -m pytest -q "$@"' in script.read_text()
    assert (root / ".ci" / "run").read_text().rstrip().endswith("bash scripts/test")
    assert "bash scripts/test" in (root / "scripts" / "fresh_clone_check").read_text()
