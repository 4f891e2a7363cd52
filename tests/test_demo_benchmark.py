"""The demo's Benchmark tab: browsing report folders, and a small run from the page through the API."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import ValidationError

from demo_server import serve_tiny
from imagen_demo.demo.benchmark_tab import (MAX_PROMPTS, describe_report, folder_name, report_folders, show_report,
                                            shown_folder)

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def test_the_committed_demo_report_is_browsable_without_its_images():
    assert "demo" in report_folders(REPORTS)
    tables, grid, plots, html = describe_report(REPORTS / "demo")
    for text in ("`default@steps=10`", "color_attr", "overall", "Exact compositional correctness", "FID", "KID",
                 "CLIP score (shapes-CLIP)"):  # the regenerated report: Inception distances and the offline CLIP
        assert text in tables
    assert Path(grid).name == "grid.png" and {Path(p).name for p in plots} >= {"exact.png", "checks.png"}
    assert Path(html).name == "report.html"


def test_names_and_missing_reports_are_refused_in_sentences(tmp_path):
    assert folder_name("", "shapes-test").startswith("shapes-test-")
    for bad in ("../escape", "a/b", ".hidden", "x" * 65):
        with pytest.raises(gr.Error, match="Name the report"):
            folder_name(bad, "shapes-test")
    with pytest.raises(gr.Error, match="no report “demo”") as refused:
        show_report(tmp_path, "demo")
    assert str(tmp_path) not in str(refused.value) and f"under {tmp_path.name}/" in str(refused.value)
    assert show_report(tmp_path, None)[0].startswith("No reports yet")


def test_the_page_names_the_reports_folder_without_the_servers_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "site" / "reports").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "site")
    assert shown_folder(Path("reports")) == shown_folder(tmp_path / "site" / "reports") == "reports"
    assert shown_folder(tmp_path / "elsewhere" / "runs") == "runs"


def test_a_small_suite_runs_from_the_page(tiny_pipe_dir, tmp_path):
    model = str(tiny_pipe_dir)
    with serve_tiny(tiny_pipe_dir, reports_dir=tmp_path) as (url, _):
        client = Client(url, verbose=False)
        labels = [c.get("props", {}).get("label") or "" for c in client.config["components"]]
        assert f"Report folder (under {tmp_path.name}/)" in labels and not [t for t in labels if str(tmp_path) in t]
        chosen, tables, grid, plots, html = client.predict(
            suite="shapes-test", limit=2, models=f"{model}@steps=1", name="mini", api_name="/benchmark")
        assert chosen["value"] == "mini" and (tmp_path / "mini" / "summary.csv").is_file()
        assert f"`{model}@steps=1`" in tables and "single_object" in tables and Path(grid).is_file()
        with pytest.raises(ValidationError, match="not one of this demo's models"):
            client.predict(suite="shapes-test", limit=2, models="someone/else", name="x", api_name="/benchmark")
        with pytest.raises(ValidationError, match=f"limit: Prompts .* must be a whole number from 1 to {MAX_PROMPTS}"):
            client.predict(suite="shapes-test", limit=MAX_PROMPTS + 1, models=model, name="x", api_name="/benchmark")
        with pytest.raises(ValidationError, match="suite: Suite must be one of .*; got 'nope'"):
            client.predict(suite="nope", limit=1, models=model, name="x", api_name="/benchmark")
        with pytest.raises(ValidationError, match="Name the report"):
            client.predict(suite="shapes-test", limit=1, models=model, name="../up", api_name="/benchmark")
        assert report_folders(tmp_path) == ["mini"]  # the refused requests wrote nothing
