"""report.html from a hand-made scored run: what a prompt or a model name says is shown as text, never run."""

from __future__ import annotations

import math

import pandas as pd
import PIL.Image

from imagen_demo.bench.report import write_report
from imagen_demo.bench.scoring import Scores

PROMPT = "<script>alert('x')</script> & a red circle"
MODEL = "tiny<b>@steps=2"


def test_a_prompt_with_markup_is_escaped_in_the_html_report(tmp_path):
    PIL.Image.new("RGB", (16, 16), "red").save(tmp_path / "a.png")
    run = {"suite": "<i>suite</i>", "seeds": [0], "models": [{"name": MODEL}], "versions": {"device": "cpu"},
           "items": [{"id": "i1", "prompt": PROMPT, "category": "<u>colors</u>"}]}
    results = pd.DataFrame([{"model": MODEL, "item": "i1", "seed": 0, "category": "<u>colors</u>", "metric": "exact",
                             "value": 1.0, "image": "a.png"}])
    summary = pd.DataFrame([{"model": MODEL, "category": c, "metric": "exact", "mean": 1.0, "ci_low": math.nan,
                             "ci_high": math.nan, "n": 1} for c in ("<u>colors</u>", "overall")])
    scores = Scores(results, pd.DataFrame(columns=["model", "metric", "value", "n"]), notes=["<img src=x onerror=alert(1)>"])
    _, html_path = write_report(tmp_path, scores, summary, run)
    page = html_path.read_text(encoding="utf-8")
    for markup in ("<script>", "<b>", "<i>", "<u>", "<img src=x"):
        assert markup not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; a red circle" in page
    assert "tiny&lt;b&gt;@steps=2" in page and "&lt;u&gt;colors&lt;/u&gt;" in page
    assert page.count("src='data:image/png;base64,") == 2  # the plot and the thumbnail, inline
