"""How a prompt is read: the shapes world's reading of it, and the English rewrite for an encoder that cannot
read Chinese (MiniLM), against one that can (the tiny T5, whose tokenizer learnt the Chinese of its corpus)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest

from imagen_demo import ImagenPipeline
from imagen_demo.cli import main
from imagen_demo.core.loading import SHIPPED_MODELS
from imagen_demo.demo.understanding import understanding
from imagen_demo.prompting import english_rewrite, unreadable_characters
from imagen_demo.shapes import parse_caption
from imagen_demo.shapes.captions import language_of
from imagen_demo.shapes.understand import describe, read
from imagen_demo.training.record import training_data
from tiny import CORPUS, build_tiny_pipeline

HELD_OUT_ZH = "一幅画着小的菱形的图"  # the first prompt of the shapes-test-zh suite
READABLE_ZH = CORPUS[5]  # every character is in the tiny T5's vocabulary
OUTSIDE_ZH = "一只猫坐在桌子上"


@pytest.fixture(scope="module")
def minilm():
    """The shipped model, whose encoder (MiniLM) reads English only."""
    return ImagenPipeline.from_pretrained("default")


def test_a_prompt_in_the_grammar_reads_as_its_scene_in_either_language():
    english, chinese = read("a red circle above a blue square"), read("红色圆形在蓝色正方形的上方")
    assert english.spec == chinese.spec and english.unknown == ()
    assert describe(english) == "**Understood as** (position): **1 × red circle** above **1 × blue square**"
    assert describe(read("two big green stars")) == "**Understood as** (counting): **2 × large green star**"


def test_outside_the_world_names_unknown_words_and_nearby_prompts_it_reads():
    cat = read("a photo of a cat on a mat")
    assert cat.spec is None and cat.unknown == ("cat", "mat")
    assert 2 <= len(cat.suggestions) <= 3 and all(parse_caption(s) for s in cat.suggestions)
    assert "Words it does not know: `cat`, `mat`" in describe(cat)
    assert read("a red circel").suggestions[0] == "a red circle"  # the misspelt word, corrected
    assert read("circle red a").unknown == () and "every word is known" in describe(read("circle red a"))
    chinese = read(OUTSIDE_ZH)
    assert "猫" in "".join(chinese.unknown) and all(parse_caption(s) for s in chinese.suggestions)
    assert all(language_of(s) == "zh" for s in chinese.suggestions)


def test_an_english_only_encoder_gets_the_english_caption_of_the_same_scene(minilm):
    assert unreadable_characters(minilm.tokenizer, HELD_OUT_ZH) and english_rewrite(minilm, "a red circle") is None
    english = english_rewrite(minilm, HELD_OUT_ZH)
    assert parse_caption(english) == parse_caption(HELD_OUT_ZH) and english == english_rewrite(minilm, HELD_OUT_ZH)
    assert not unreadable_characters(minilm.tokenizer, english)
    with pytest.raises(ValueError, match="encoder \\(minilm\\) cannot read the characters .*猫.*Write the prompt in English"):
        english_rewrite(minilm, OUTSIDE_ZH)


def test_an_encoder_that_reads_the_language_gets_the_prompt_as_typed(tiny_pipe):
    assert english_rewrite(tiny_pipe, READABLE_ZH) is None
    english = english_rewrite(tiny_pipe, HELD_OUT_ZH)  # 幅, 画, ... are not in its vocabulary
    assert parse_caption(english) == parse_caption(HELD_OUT_ZH)
    with pytest.raises(ValueError, match="not a sentence of the shapes world's Chinese grammar"):
        english_rewrite(tiny_pipe, OUTSIDE_ZH)


def test_the_pipeline_samples_the_prompt_it_is_given(tiny_pipe, monkeypatch):
    """Rewriting is the applications' step, applied once: the pipeline itself encodes what it gets."""
    encoder, seen = tiny_pipe.prompt_encoder, []
    encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda prompts: seen.append(prompts) or encode(prompts))
    tiny_pipe(HELD_OUT_ZH, seed=0, num_inference_steps=1, guidance_scale=1.0)
    assert seen == [[HELD_OUT_ZH]]


def test_the_training_record_says_which_world_a_model_knows(tiny_encoder, tmp_path):
    assert training_data(SHIPPED_MODELS["default"]) == "shapes"
    pipe = build_tiny_pipeline(tiny_encoder)
    pipe.save_pretrained(tmp_path / "shapes", extra_files={"training.json": {"data": "shapes"}})
    pipe.save_pretrained(tmp_path / "unknown")
    shapes = ImagenPipeline.from_pretrained(tmp_path / "shapes")
    unknown = ImagenPipeline.from_pretrained(tmp_path / "unknown")
    assert (training_data(shapes.name_or_path), training_data(unknown.name_or_path)) == ("shapes", None)
    assert understanding(shapes, "two green stars").startswith("**Understood as**")
    assert understanding(unknown, "two green stars") == ""  # a world it was not trained on: nothing to say
    assert understanding(unknown, HELD_OUT_ZH).startswith("**Rewritten as:**")  # the encoder's limit still shows
    assert understanding(unknown, HELD_OUT_ZH, rewrite=False) == ""


def test_cli_prints_the_rewrite_and_no_rewrite_samples_the_prompt_as_typed(tiny_pipe_dir, tmp_path, capsys):
    args = ["generate", HELD_OUT_ZH, "--model", str(tiny_pipe_dir), "--seed", "1", "--steps", "1"]
    assert main(args + ["--out", str(tmp_path / "zh.png")]) == 0
    english = english_rewrite(ImagenPipeline.from_pretrained(tiny_pipe_dir), HELD_OUT_ZH)
    assert f"rewritten as: {english}" in capsys.readouterr().out
    assert main(["generate", english] + args[2:] + ["--out", str(tmp_path / "en.png")]) == 0
    pixels = lambda name: np.asarray(PIL.Image.open(tmp_path / name))
    np.testing.assert_array_equal(pixels("zh.png"), pixels("en.png"))
    assert main(args + ["--no-rewrite", "--out", str(tmp_path / "typed.png")]) == 0
    assert "rewritten as" not in capsys.readouterr().out
    assert not np.array_equal(pixels("zh.png"), pixels("typed.png"))
    assert main(["generate", OUTSIDE_ZH] + args[2:] + ["--out", str(tmp_path / "x.png")]) == 2
    assert "Write the prompt in English" in capsys.readouterr().err
