"""End to end in headless Chromium: type a prompt, press Generate, watch the previews and the progress bar, get the
picture; the line that says what the model draws, the suggestions and examples that run, a prompt outside the world
drawn with its warning, and the Benchmark tab's grid and plots at full size.

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
# Each time a preview picture finishes loading, and every 50 ms while one is shown, records whether the run is still
# going and whether the picture is on screen and uncovered: the topmost element at its centre is the picture itself,
# and nothing it sits in is see-through.
WATCH_PREVIEWS = """() => {
    window.previews = [];
    const look = () => {
        if (!document.querySelector('#generate-gallery').innerText.includes('preview ·')) return;
        for (const img of document.querySelectorAll('#generate-gallery img')) {
            if (!img.complete || !img.naturalWidth) continue;
            const box = img.getBoundingClientRect();
            let opacity = 1;
            for (let e = img; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
            window.previews.push({
                uncovered: document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === img,
                opacity, running: !document.querySelector('#generate-info').innerText.includes('To reproduce')});
        }
    };
    document.addEventListener('load', look, true);
    setInterval(look, 50);
}"""
# Natural and shown size of every loaded picture under `selector`, and how it is fitted into its box.
SHOWN_SIZES = """(selector) => [...document.querySelectorAll(selector + ' img')]
    .filter(i => i.complete && i.naturalWidth)
    .map(i => ({natural: [i.naturalWidth, i.naturalHeight], fit: getComputedStyle(i).objectFit,
                shown: [Math.round(i.getBoundingClientRect().width), Math.round(i.getBoundingClientRect().height)]}))"""


@pytest.fixture(scope="module")
def demo_url(tiny_encoder, tmp_path_factory):
    if url := os.environ.get("IMAGEN_DEMO_URL"):
        yield url
        return
    # 40 steps a stage by default: each stage then lasts long enough for the progress bar and previews to show.
    pipe = build_tiny_pipeline(tiny_encoder)
    pipe.defaults = dataclasses.replace(pipe.defaults, num_inference_steps=40)
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


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    page.goto(url)
    return page


def generate(page, prompt: str, *watchers: str) -> None:
    """Type `prompt`, start the in-page `watchers`, press Generate and wait for the result."""
    from playwright.sync_api import expect

    page.get_by_label("Prompt", exact=True).fill(prompt)
    for script in watchers:
        page.evaluate(script)
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("#generate-info")).to_contain_text("To reproduce", timeout=120_000)


def test_type_a_prompt_press_generate_and_get_the_picture(demo_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, demo_url)
    generate(page, PROMPT, WATCH_PROGRESS)
    expect(page.locator("#generate-gallery img").first).to_be_visible()
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)
    assert set(page.evaluate("[...window.seenProgress]")) >= {"stage 1/2", "stage 2/2"}
    screenshot = Path(os.environ.get("IMAGEN_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 10_000


def test_previews_are_on_screen_and_uncovered_while_sampling(demo_url, browser):
    page = open_page(browser, demo_url)
    generate(page, PROMPT, WATCH_PREVIEWS)
    shown = [p for p in page.evaluate("window.previews") if p["running"]]
    assert shown and all(p["uncovered"] and p["opacity"] == 1 for p in shown), shown


def test_the_page_says_what_the_model_draws_and_its_suggestions_and_examples_run(demo_url, browser):
    from playwright.sync_api import expect

    page = open_page(browser, demo_url)
    line = page.locator("#world-line")
    expect(line).to_contain_text("What it draws: 1 to 4 simple shapes (circle, square, triangle, star", timeout=30_000)
    expect(line).to_contain_text("What it does not: anything else. Photos, animals, people")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a photo of a cat on a sofa")
    suggestion = page.locator("#generate-understood-suggestions button").first
    expect(suggestion).to_be_visible(timeout=30_000)
    suggested = suggestion.inner_text()
    suggestion.click()
    expect(prompt).to_have_value(suggested)
    expect(page.locator("#generate-understood")).to_contain_text("Understood as")
    examples = page.locator("#generate-examples")
    for raw in ("random seed", "false"):
        expect(examples).not_to_contain_text(raw)
    examples.get_by_role("button", name="two green stars").click()
    expect(page.locator("#generate-info")).to_contain_text("seed 1.", timeout=120_000)
    expect(prompt).to_have_value("two green stars")
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)


def test_a_prompt_outside_the_world_is_drawn_with_the_warning_beside_it(demo_url, browser):
    from playwright.sync_api import expect

    page = open_page(browser, demo_url)
    generate(page, "a photo of a cat on a sofa")
    info = page.locator("#generate-info")
    expect(info).to_contain_text("This picture is not what the prompt asks for: the model draws only the shapes world")
    expect(info).to_contain_text("Words it does not know: cat, sofa. Prompts it reads:")
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)


def test_benchmark_tab_shows_a_report_with_its_tables_and_grid(demo_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser, demo_url)
    page.get_by_role("tab", name="Benchmark").click()
    expect(page.get_by_text("Exact compositional correctness").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("color_attr").first).to_be_visible()
    grid = page.locator("#benchmark-grid img")
    grid.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#benchmark-grid img')].some(i => i.complete && i.naturalWidth)",
                           timeout=30_000)
    [grid_size] = page.evaluate(SHOWN_SIZES, "#benchmark-grid")
    assert grid_size["shown"] == grid_size["natural"], grid_size  # full size: its captions as readable as drawn
    plots = page.locator("#benchmark-plots img")
    for index in range(plots.count()):
        plots.nth(index).scroll_into_view_if_needed()
    page.wait_for_function("(n) => [...document.querySelectorAll('#benchmark-plots img')].filter(i => i.complete && "
                           "i.naturalWidth).length == n", arg=plots.count(), timeout=30_000)
    plot_sizes = page.evaluate(SHOWN_SIZES, "#benchmark-plots")
    assert plot_sizes and all(p["fit"] == "contain" for p in plot_sizes), plot_sizes  # uncropped
    grid.scroll_into_view_if_needed()
    target = os.environ.get("IMAGEN_DEMO_SCREENSHOT")
    screenshot = Path(target).with_name(Path(target).stem + "-benchmark.png") if target else tmp_path / "benchmark.png"
    page.screenshot(path=screenshot, full_page=False)
    assert screenshot.stat().st_size > 10_000


def test_a_chinese_prompt_is_understood_rewritten_and_drawn(demo_url, browser):
    from playwright.sync_api import expect

    page = open_page(browser, demo_url)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a photo of a cat on a mat")
    expect(page.locator("#generate-understood")).to_contain_text("Words it does not know: cat, mat", timeout=30_000)
    prompt.fill(HELD_OUT_ZH)
    understood = page.locator("#generate-understood")
    expect(understood).to_contain_text("Understood as (single object): 1 × small diamond (any colour)", timeout=30_000)
    expect(understood).to_contain_text("Rewritten as:")
    generate(page, HELD_OUT_ZH)
    expect(page.locator("#generate-info")).to_contain_text("Rewritten as:")
    page.wait_for_function(IMAGE_LOADED, timeout=30_000)
