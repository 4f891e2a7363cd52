"""`python app.py` as a visitor meets it: the address it prints, and a crowd (benchmarks/demo_load.py, smaller, on
the tiny model) in which every valid request is served or waits with its place shown, every bad one is refused
before the queue in a sentence naming its field, and the server stays up with a clean log."""

from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest

import app
from benchmarks import demo_load
from tiny import SHAPES_RECORD, build_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("load") / "tiny"
    build_tiny_pipeline(tiny_encoder).save_pretrained(folder, store_text_encoder=True, extra_files=SHAPES_RECORD)
    return folder


@contextmanager
def holding(port: int):
    """Keep `port` busy (if another program does not already). SO_REUSEADDR as Gradio's own check has it: a port an
    earlier test server left in TIME_WAIT is free to Gradio, so it must be taken here too."""
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            busy.bind(("127.0.0.1", port))
            busy.listen()
        except OSError:
            pass  # in use already: just as good
        yield


@pytest.fixture(scope="module")
def crowd(tiny_model, tmp_path_factory):
    """8 valid requests and one bad request per field, at once, against app.py started while 7860 is busy. Each
    visitor waits up to 15 minutes: on a machine whose cores other jobs hold, the crowd can take that long."""
    with holding(app.DEFAULT_PORT):
        return demo_load.run(["--model", str(tiny_model), "--clip", "none"], valid=8, steps=[1, 1],
                             log=tmp_path_factory.mktemp("load") / "app.log", timeout=900)


def test_a_crowd_is_served_or_queued_and_bad_requests_are_refused_naming_their_field(crowd):
    assert crowd.failures() == [], crowd.summary()
    assert all(v.outcome == "served" for v in crowd.valid) and any(v.positions for v in crowd.valid)
    assert {v.bad_field for v in crowd.bad} >= {"num_images", "noise_aug_level"}


def test_the_app_prints_the_address_it_serves_on_and_why_it_is_not_7860(crowd):
    line = next(line for line in crowd.log.splitlines() if line.startswith("imagen_demo: serving on"))
    assert "(not 7860: port" in line and "in use by another program; choose the port with --port" in line
    assert app.serving_line("http://127.0.0.1:7860/", 7860, None) == "imagen_demo: serving on http://127.0.0.1:7860/"
    assert "ports 7860–7861 are in use" in app.serving_line("http://127.0.0.1:7862/", 7862, None)
    assert app.serving_line("http://127.0.0.1:8080/", 8080, 8080) == "imagen_demo: serving on http://127.0.0.1:8080/"


def test_a_chosen_port_in_use_is_one_line_of_error(tiny_model, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert app.main(["--model", str(tiny_model), "--clip", "none", "--port", str(port)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (f"error: cannot serve on port {port}: in use by another "
                                                        "program. Choose a free one with --port or GRADIO_SERVER_PORT.")
