"""What every tab is built from: the shared model registry, the configured models and the request limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bench.metrics.clip_score import ClipScorer
from ..registry import ModelRegistry, parse_model_list

# Every event that samples shares this concurrency group, so tabs never sample at the same time.
SAMPLING = "sampling"


@dataclass(frozen=True)
class DemoContext:
    registry: ModelRegistry  # loads each model once; every tab and request shares it
    model: str  # the Generate tab's model entry
    compare_models: str  # the Compare tab's entries when the page opens
    max_images: int = 4  # images per Generate request
    max_compare: int = 4  # entries per Compare request
    concurrency: int = 1  # sampling events that may run at once (1 on a CPU)
    reports_dir: Path = Path("reports")  # the Benchmark tab's report folders live here
    clip: ClipScorer | None = None  # scores every picture of the Generate and Compare tabs

    @property
    def sources(self) -> set[str]:
        """The models this demo was started with: the only weights a visitor can make it load."""
        return {self.model} | {spec.source for spec in parse_model_list(self.compare_models)}

    def event_options(self) -> dict:
        """Keyword arguments for every sampling event listener: one sampling group across the tabs, and the inputs
        handed over raw (no preprocessing). Gradio's preprocessing checks a slider's range and a radio's or dropdown's
        choices before the event's validator runs, in words that do not name the field ("Value 10 is greater than
        maximum value 4"), and answers an API client with a bare HTTP 400; the validator's sentences name it. These
        events' inputs (text, numbers, sliders, checkboxes, choices) need no preprocessing beyond that check."""
        return {"concurrency_limit": self.concurrency, "concurrency_id": SAMPLING, "preprocess": False}
