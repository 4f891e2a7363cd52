"""The web demo through its API (gradio_client against a live server on the tiny model), and its helpers."""

from __future__ import annotations

import re
import shlex
import threading
import time

import gradio as gr
import numpy as np
import PIL.Image
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, ValidationError

from demo_server import serve_tiny
from imagen_demo import cli
from imagen_demo.bench.metrics.clip_score import ClipScorer
from imagen_demo.demo.generate_tab import cli_command
from imagen_demo.demo.streaming import Cancelled, run_streaming
from imagen_demo.demo.validation import (
    MAX_STEPS, UserError, compare_entries, guidance_value, prompt_text, seed_value, steps_value, truncation_notice,
    user_errors,
)
from imagen_demo.core.loading import WeightsNotFoundError
from imagen_demo.core.pipeline import MAX_SEED
from imagen_demo.prompting import english_rewrite
from imagen_demo.shapes.understand import read
from tiny import SHAPES_RECORD, build_tiny_pipeline, build_tiny_stable_diffusion

PROMPT = "a red circle above a blue square"
HELD_OUT_ZH = "一幅画着小的菱形的图"  # from shapes-test-zh; the tiny T5 cannot read 幅, 画, ...
FAST = {"steps_1": 2, "steps_2": 2}


@pytest.fixture(scope="module")
def stable_diffusion(tmp_path_factory) -> str:
    """A tiny Stable Diffusion folder built from diffusers' own classes: the Compare tab may show it too."""
    return str(build_tiny_stable_diffusion(tmp_path_factory.mktemp("sd")))


@pytest.fixture(scope="module")
def server(tiny_encoder, stable_diffusion, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "tiny"
    build_tiny_pipeline(tiny_encoder).save_pretrained(folder, extra_files=SHAPES_RECORD)
    model = str(folder)
    entries = f"{model}@steps=2,{model}@steps=1,{model}@steps=2,scheduler=ddim,{stable_diffusion}@steps=2"
    with serve_tiny(folder, compare_models=entries, clip="shapes-clip") as (url, registry):
        yield Client(url, verbose=False), registry, model


def pixels(path: str) -> np.ndarray:
    return np.asarray(PIL.Image.open(path), dtype=np.int16)


def generate(client: Client, **kwargs):
    request = {"prompt": PROMPT, "seed": 7, "randomize_seed": False, **FAST, **kwargs}
    return client.predict(**request, api_name="/generate")


def test_generate_gives_every_stage_and_the_same_pixels_for_the_same_seed(server):
    client = server[0]
    images, stages, note, seed = generate(client, num_images=2)
    assert seed == 7 and "seeds 7–8" in note
    assert [item["caption"].split(" · ")[0] for item in images] == ["seed 7", "seed 8"]
    assert [PIL.Image.open(item["image"]).size for item in images] == [(32, 32)] * 2
    assert [PIL.Image.open(item["image"]).size for item in stages] == [(16, 16), (32, 32)] * 2
    again = generate(client, num_images=1)[0]
    np.testing.assert_array_equal(pixels(again[0]["image"]), pixels(images[0]["image"]))
    other = generate(client, num_images=1, seed=8)[0]
    assert not np.array_equal(pixels(other[0]["image"]), pixels(images[0]["image"]))
    np.testing.assert_array_equal(pixels(other[0]["image"]), pixels(images[1]["image"]))  # image i has seed + i


def test_previews_stream_before_the_result(server):
    job = server[0].submit(prompt=PROMPT, seed=1, randomize_seed=False, **FAST, api_name="/generate")
    job.result()
    captions = [output[0][0]["caption"] for output in job.outputs()]
    assert captions[:2] == ["preview · stage 1/2 · step 2/2", "preview · stage 2/2 · step 2/2"]
    assert len(captions) == 3 and captions[2].startswith("seed 1 · ")


def test_a_random_seed_is_shown_and_the_shown_command_reproduces_the_image(server, tmp_path):
    client, _, model = server
    images, _, note, seed = generate(client, randomize_seed=True, negative_prompt="green", guidance_2=1.5)
    assert 0 <= seed <= MAX_SEED and f"seed {seed}" in note
    command = shlex.split(note.split("```bash\n")[1].split("\n```")[0])
    assert command[:4] == ["python", "-m", "imagen_demo", "generate"] and command[-2:] == ["--", PROMPT]
    assert model in command
    assert cli.main(command[3:4] + ["--out", str(tmp_path / "cli.png")] + command[4:]) == 0
    np.testing.assert_array_equal(pixels(tmp_path / "cli.png"), pixels(images[0]["image"]))
    dashed = shlex.split(cli_command("default", "-a dash first", {"seed": 1}))[3:]
    assert cli.build_parser().parse_args(dashed).prompt == "-a dash first"


def reproduce_command(note: str) -> list[str]:
    return shlex.split(note.split("```bash\n")[1].split("\n```")[0])


def test_the_panel_reads_the_prompt_and_a_chinese_prompt_is_rewritten_into_english(server):
    client, registry, model = server
    english = english_rewrite(registry.get(model).pipeline, HELD_OUT_ZH)
    shown, suggested = client.predict(prompt=HELD_OUT_ZH, rewrite=True, api_name="/understand")
    assert "**Understood as** (single object): **1 × small diamond (any colour)**" in shown
    assert suggested["visible"] is False  # a prompt it reads needs no suggestions
    assert f"**Rewritten as:** “{english}”" in shown
    images, _, note, _ = generate(client, prompt=HELD_OUT_ZH)
    assert f"“{english}”" in note and PIL.Image.open(images[0]["image"]).size == (32, 32)
    assert reproduce_command(note)[-2:] == ["--", english]  # the command carries what the encoder read
    note = generate(client, prompt=HELD_OUT_ZH, rewrite=False)[2]
    assert "Rewritten" not in note and reproduce_command(note)[-3:] == ["--no-rewrite", "--", HELD_OUT_ZH]
    outside, suggested = client.predict(prompt="a photo of a cat on a mat", rewrite=True, api_name="/understand")
    assert outside.endswith("Words it does not know: `cat`, `mat`.")  # the prompts it reads are listed beside it
    near = list(read("a photo of a cat on a mat").suggestions)
    assert suggested["visible"] and [row[0] for row in suggested["samples"]] == near
    with pytest.raises(ValidationError, match="cannot read the characters"):  # refused before it takes a queue place
        generate(client, prompt="一只猫坐在桌子上")


def test_a_prompt_outside_the_world_is_drawn_with_the_warning_beside_it(server):
    images, _, note, _ = generate(server[0], prompt="a photo of a cat on a mat")
    assert note.startswith("⚠️ **This picture is not what the prompt asks for:** the model draws only the shapes world.")
    assert "Words it does not know: `cat`, `mat`. Prompts it reads: “" in note and len(images) == 1
    assert "⚠️" not in generate(server[0])[2]  # a prompt it reads gets no warning


def test_compare_shows_one_image_per_entry_with_its_time_and_loads_the_model_once(server):
    client, registry, model = server
    entries = [f"{model}@steps=2", f"{model}@steps=1", f"{model}@steps=2,scheduler=ddim"]
    images, table = client.predict(prompt=PROMPT, seed=3, models=",".join(entries), api_name="/compare")
    assert [item["caption"].split(" · ")[0] for item in images] == entries
    assert all(re.fullmatch(r"\d+\.\d s", item["caption"].split(" · ")[1]) for item in images)
    assert [PIL.Image.open(item["image"]).size for item in images] == [(32, 32)] * 3
    assert len(table.splitlines()) == 2 + len(entries) and "| entry | seconds | CLIP score (shapes-CLIP) |" in table
    assert list(registry.load_seconds) == [model]  # the Generate and Compare tabs share one loaded pipeline


def test_compare_puts_a_stable_diffusion_pipeline_beside_the_imagen_cascade(server, stable_diffusion):
    client, registry, model = server
    entries = [f"{model}@steps=2", f"{stable_diffusion}@steps=2,scheduler=EulerDiscreteScheduler"]
    images, table = client.predict(prompt=PROMPT, seed=3, models=",".join(entries), api_name="/compare")
    assert [item["caption"].split(" · ")[0] for item in images] == entries
    assert [PIL.Image.open(item["image"]).size for item in images] == [(32, 32), (16, 16)]
    assert type(registry.get(entries[1]).pipeline.scheduler).__name__ == "EulerDiscreteScheduler"


def test_every_picture_has_its_shapes_clip_score_under_it(server):
    client = server[0]
    clip = ClipScorer("shapes-clip")
    generated = generate(client, num_images=2)[0]
    compared = client.predict(prompt=PROMPT, seed=3, models=server[2] + "@steps=1", api_name="/compare")[0]
    for item in generated + compared:
        shown = item["caption"].split(" · ")[-1]
        assert shown.startswith("CLIP score (shapes-CLIP): ")
        value = clip([PIL.Image.open(item["image"])], [PROMPT])[0]
        assert shown == f"CLIP score (shapes-CLIP): {value:.1f}"  # the picture's own score
    outside = client.predict(prompt="a photo of a cat on a mat", seed=3, models=server[2] + "@steps=1",
                             api_name="/compare")[0]
    assert outside[0]["caption"].endswith("CLIP score (shapes-CLIP): – (words it was not trained on)")


def test_a_second_demo_takes_another_port_and_both_answer(server):
    client, _, model = server
    with serve_tiny(model) as (url, _):
        assert url.rstrip("/") != client.src.rstrip("/")  # the first demo's port was taken: the URL is the real one
        second = Client(url, verbose=False)
        assert {"/generate", "/compare"} <= set(second.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert len(generate(client)[0]) == 1  # the first one still serves


def test_bad_requests_are_refused_before_the_queue_in_sentences_naming_the_field(server):
    client, _, model = server
    bad = [
        ("/generate", {"prompt": "   "}, "prompt: Please describe the image"),
        ("/generate", {"steps_1": 0}, "steps_1: Steps of stage 1 must be a whole number of steps from 1 to 100"),
        ("/generate", {"steps_2": MAX_STEPS + 1}, "Steps of stage 2"),
        ("/generate", {"guidance_1": -1}, "Guidance of stage 1 must be between 0 and 30"),
        ("/generate", {"seed": -5}, "seed must be a whole number"),
        ("/generate", {"num_images": 5}, "Number of images must be a whole number from 1 to 4; got 5"),
        ("/generate", {"noise_aug_level": 2}, "Noise-augmentation level .* must be a number from 0 to 1; got 2"),
        ("/generate", {"scheduler": "fastest"}, "Scheduler must be one of ddpm, ddim, dpm\\+\\+, unipc"),
        ("/compare", {"models": ",".join(f"{model}@steps={n}" for n in range(1, 6))}, "at most 4 entries"),
        ("/compare", {"models": "./elsewhere"}, "not one of this demo's models"),
        ("/compare", {"models": f"{model}@stpes=2"}, "unknown setting 'stpes'"),
        ("/compare", {"models": f"{model}@steps=many"}, "steps must be a whole number \\(or one per stage"),
        ("/compare", {"models": f"{model}@steps=1000"}, "@steps=1000: steps must be a whole number of steps from 1"),
    ]
    for endpoint, kwargs, message in bad:
        with pytest.raises(ValidationError, match=message):
            if endpoint == "/generate":
                generate(client, **kwargs)
            else:
                client.predict(**{"prompt": PROMPT, "seed": 0, **kwargs}, api_name=endpoint)
    # Passes the demo's checks; the pipeline's own check refuses it while sampling, as a sentence that stays on
    # screen until dismissed (Gradio's default fades after 10 s).
    with pytest.raises(AppError, match=r"noise_aug_level must be in \[0, 1\]") as refused:
        client.predict(prompt=PROMPT, seed=0, models=f"{model}@steps=1,noise_aug=2", api_name="/compare")
    assert refused.value.duration is None
    assert PIL.Image.open(generate(client)[0][0]["image"]).size == (32, 32)


def test_the_fields_say_their_limits_where_they_are_typed(server):
    shown = {c["props"].get("label"): c["props"] for c in server[0].config["components"] if c.get("props")}
    assert shown["Steps · stage 1"]["info"] == shown["Steps · stage 2"]["info"] == f"1 to {MAX_STEPS}"
    assert shown["Guidance · stage 1 (base, 16 px)"]["info"] == "0 to 30; 1 turns guidance off"
    images = shown["Number of images"]
    assert images["info"] == "1 to 4" and (images["minimum"], images["maximum"]) == (1, 4)


def test_app_reports_a_missing_model_in_one_line(monkeypatch, tmp_path, capsys):
    import app

    monkeypatch.setenv("IMAGEN_MODEL", str(tmp_path / "nowhere"))
    assert app.main([]) == 2
    assert capsys.readouterr().err.startswith(f"error: Model '{tmp_path / 'nowhere'}' is not available")


# ----------------------------------------------------------------------------------------------- helpers


def test_input_checks_name_the_field_and_the_bound(tiny_encoder):
    assert prompt_text("  two green stars ") == "two green stars"
    with pytest.raises(gr.Error, match="describe the image"):
        prompt_text(None)
    assert truncation_notice(tiny_encoder, "two green stars") is None
    assert "reads the first 16" in truncation_notice(tiny_encoder, " ".join([PROMPT] * 4))
    assert seed_value(12, False, 4) == 12
    assert all(0 <= seed_value(None, True, 4) <= MAX_SEED - 3 for _ in range(50))
    for seed in (None, -1, 1.5, MAX_SEED - 2):
        with pytest.raises(gr.Error, match=f"from 0 to {MAX_SEED - 3}"):
            seed_value(seed, False, 4)
    assert steps_value(25.0, "Steps") == 25 and guidance_value(0, "Guidance") == 0.0
    for steps in (0, 2.5, MAX_STEPS + 1, None):
        with pytest.raises(gr.Error, match="Steps of stage 2 must be"):
            steps_value(steps, "Steps of stage 2")
    with pytest.raises(gr.Error, match="Guidance must be between 0 and 30"):
        guidance_value(31, "Guidance")


def test_compare_entries_are_bounded_to_the_demo_models():
    assert [s.name for s in compare_entries("a, a@steps=3,guidance=2", {"a"}, 2)] == ["a", "a@steps=3,guidance=2"]
    for text, message in [("", "no models"), ("a,a@steps=1,a@steps=2", "at most 2"), ("a,b", "“b” is not one of")]:
        with pytest.raises(gr.Error, match=message):
            compare_entries(text, {"a"}, 2)


def test_user_errors_become_their_message_stay_on_screen_and_log_one_line(caplog):
    for err in (ValueError("bad seed"), FloatingPointError("stage 2: NaN"), WeightsNotFoundError("no weights")):
        caplog.clear()
        with pytest.raises(UserError, match=str(err)) as refused, user_errors():
            raise err
        assert refused.value.duration is None and not refused.value.print_exception  # no traceback in the log
        assert caplog.messages == [f"refused: {err}"]
    with pytest.raises(RuntimeError), user_errors():
        raise RuntimeError("a bug stays a bug")


def test_streaming_yields_shown_events_returns_the_result_and_raises_worker_errors():
    def consume(work, show):
        result = yield from run_streaming(work, show)
        yield ("result", result)

    def work(report):
        for event in (1, None, 2):
            report(event)
        return "done"

    assert list(consume(work, lambda e: None if e is None else e * 10)) == [10, 20, ("result", "done")]

    def failing(report):
        report("step")
        raise FloatingPointError("stage 2: NaN in the model output")

    stream = run_streaming(failing, str.upper)
    assert next(stream) == "STEP"
    with pytest.raises(gr.Error, match="NaN in the model output"), user_errors():
        next(stream)


def test_closing_the_stream_stops_the_worker():
    stopped = threading.Event()

    def endless(report):
        try:
            while True:
                report("step")
                time.sleep(0.001)
        except Cancelled:
            stopped.set()
            raise

    stream = run_streaming(endless, lambda e: e)
    assert next(stream) == "step"
    stream.close()
    assert stopped.wait(5)
