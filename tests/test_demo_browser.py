"""End to end in headless Chromium: type a prompt, press Generate, watch the progress bar, get the picture.

CI installs Debian's chromium (.ci/run), so a missing browser fails rather than skips. Against a running
demo instead of the tiny test server (to refresh the README screenshot on the shipped model)::

    python app.py &
    IMAGEN_DEMO_URL=http://127.0.0.1:7860 IMAGEN_DEMO_SCREENSHOT=docs/demo.png \\
        python -m pytest -q tests/test_demo_browser.py
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from demo_server import serve_tiny
from tiny import SHAPES_RECORD, build_tiny_pipeline

CHROMIUM = Path("/usr/bin/chromium")
REPORTS = Path(__file__).resolve().parents[1] / "reports"  # holds the committed demo report
PROMPT = "a red circle above a blue square"
HELD_OUT_ZH = "一幅画着小的菱形的图"  # from shapes-test-zh; neither the tiny T5 nor MiniLM reads all of it
# Records every stage the progress bar names ("stage 1/2 · 64 px"), however briefly it shows.
WATCH_PROGRESS = """() => {
    window.seenProgress = new Set();
    new MutationObserver(() => {
        const shown = document.body.innerText.matchAll(/(stage \\d+\\/\\d+) · \\d+ px/g);
        for (const match of shown) window.seenProgress.add(match[1]);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
IMAGE_LOADED = "() => [...document.querySelectorAll('#generate-gallery img')].some(i => i.complete && i.naturalWidth)"


@pytest.fixture(scope="module")
def demo_url(tiny_encoder, tmp_path_factory):
    if url := os.environ.get("IMAGEN_DEMO_URL"):
        yield url
        return
    # 20 steps a stage by default: each stage then lasts long enough for the progress bar to show it.
    pipe = build_tiny_pipeline(tiny_encoder)
    pipe.defaults = dataclasses.replace(pipe.defaults, num_inference_steps=20)
    folder = tmp_path_factory.mktemp("browser") / "tiny"
    pipe.save_pretrained(folder, extra_files=SHAPES_RECORD)
    with serve_tiny(folder, reports_dir=REPORTS) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"the browser test needs Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_type_a_prompt_press_generate_and_get_the_picture(demo_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.goto(demo_url)
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.evaluate(WATCH_PROGRESS)
    page.get_by_role("button", name="Generate", exact=True).click()

    expect(page.locator("#generate-info")).to_contain_text("To reproduce", timeout=120_000)
    expect(page.locator("#generate-gallery img").first).to_be_visible()
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)
    assert set(page.evaluate("[...window.seenProgress]")) >= {"stage 1/2", "stage 2/2"}
    screenshot = Path(os.environ.get("IMAGEN_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 10_000


def test_benchmark_tab_shows_a_report_with_its_tables_and_grid(demo_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.goto(demo_url)
    page.get_by_role("tab", name="Benchmark").click()
    expect(page.get_by_text("Exact compositional correctness").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("color_attr").first).to_be_visible()
    grid = page.locator("#benchmark-grid img")
    grid.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#benchmark-grid img')].some(i => i.complete && i.naturalWidth)",
                           timeout=30_000)
    target = os.environ.get("IMAGEN_DEMO_SCREENSHOT")
    screenshot = Path(target).with_name(Path(target).stem + "-benchmark.png") if target else tmp_path / "benchmark.png"
    page.screenshot(path=screenshot, full_page=False)
    assert screenshot.stat().st_size > 10_000


def test_a_chinese_prompt_is_understood_rewritten_and_drawn(demo_url, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.goto(demo_url)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a photo of a cat on a mat")
    expect(page.locator("#generate-understood")).to_contain_text("Words it does not know: cat, mat", timeout=30_000)
    prompt.fill(HELD_OUT_ZH)
    understood = page.locator("#generate-understood")
    expect(understood).to_contain_text("Understood as (single object): 1 × small diamond (any colour)", timeout=30_000)
    expect(understood).to_contain_text("Rewritten as:")
    page.get_by_role("button", name="Generate", exact=True).click()

    info = page.locator("#generate-info")
    expect(info).to_contain_text("To reproduce", timeout=120_000)
    expect(info).to_contain_text("Rewritten as:")
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)
