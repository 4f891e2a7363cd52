"""Score a run folder: per-image metrics (cached in scores.jsonl, so a re-run or a report rebuild only
scores new images), set-level distances per model, and bootstrap summaries per model × category.

Only the images the latest invocation planned (run.json: its models, items and seeds) are scored;
older manifest lines from an edited suite or a changed model stay on disk but out of the tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import PIL.Image

from imagen_demo.utils.atomic import atomic_path

from .jsonl import append_jsonl, read_jsonl
from .metrics import MetricUnavailable
from .metrics.clip_score import HUB_CLIP, ClipScorer, clip_cache_key, clip_label, resolve_clip
from .metrics.distances import FID_RESAMPLES, distribution_distances
from .metrics.exact import verifier_scores
from .metrics.features import feature_network
from .metrics.fidelity import sr_fidelity
from .metrics.statistics import bootstrap_ci
from .references import reference_renders
from .manifest import Manifest
from .runner import RUN_FILE, batches, true_render_pair
from .suite import SuiteItem

SCORES_FILE = "scores.jsonl"
RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.csv"
OVERALL = "overall"
# Higher is better for every metric except these (shown with an arrow in the report).
LOWER_IS_BETTER_PREFIXES = ("seconds", "FID", "KID", "FD-", "KD-")


@dataclass
class Scores:
    results: pd.DataFrame  # one row per image x metric
    sets: pd.DataFrame  # one row per model x set-level metric
    notes: list[str] = field(default_factory=list)  # one line per skipped metric
    clip: str | None = None  # the CLIP behind clip_score, as reports name it ("shapes-CLIP", a hub id, ...)


def load_run(out: Path) -> dict:
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a benchmark run folder (no {RUN_FILE}); create one with `python -m benchmarks run`")
    return json.loads(path.read_text(encoding="utf-8"))


def planned_entries(out: Path, run: dict) -> list[dict]:
    """Manifest entries of this run's plan, in model order, then item order, then seed."""
    manifest = Manifest(Path(out))
    wanted = {(m["name"], m["fingerprint"]) for m in run["models"]}
    order = {item["id"]: i for i, item in enumerate(run["items"])}
    model_order = {m["name"]: i for i, m in enumerate(run["models"])}
    entries = [e for key, e in manifest.entries.items() if manifest.done(key)
               and (e["model"], e.get("fingerprint")) in wanted and e["item"] in order
               and (e["kind"] == "sr" or e["seed"] in run["seeds"])]
    return sorted(entries, key=lambda e: (model_order[e["model"]], e["kind"], order[e["item"]], e["seed"]))


class ScoreCache:
    """scores.jsonl: {key, scorer, metric, value} lines; `scorer` names the metric's model/version."""

    def __init__(self, out: Path):
        self.path = Path(out) / SCORES_FILE
        self.values: dict[tuple[str, str], dict[str, float]] = {}
        for row in read_jsonl(self.path):
            if {"key", "scorer", "metric", "value"} <= set(row):
                self.values.setdefault((row["key"], row["scorer"]), {})[row["metric"]] = row["value"]

    def missing(self, entries: list[dict], scorer: str) -> list[dict]:
        return [e for e in entries if (e["key"], scorer) not in self.values]

    def add(self, entry: dict, scorer: str, values: dict[str, float]) -> None:
        append_jsonl(self.path, [{"key": entry["key"], "scorer": scorer, "metric": m, "value": v} for m, v in values.items()])
        self.values[(entry["key"], scorer)] = dict(values)


def load_images(paths: list[Path]) -> list[PIL.Image.Image]:
    out = []
    for path in paths:
        with PIL.Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


def _images(out: Path, entries: list[dict]) -> list[PIL.Image.Image]:
    return load_images([Path(out) / e["image"] for e in entries])


def score_run(out: Path, clip: str | None = None, features: str = "auto", reference: Path | None = None,
              batch_size: int = 16, device: str = "cpu", reference_seeds: int | None = None,
              fid_resamples: int = FID_RESAMPLES) -> Scores:
    out = Path(out)
    run = load_run(out)
    items = {item["id"]: SuiteItem(**item) for item in run["items"]}
    entries = planned_entries(out, run)
    images = [e for e in entries if e["kind"] == "image"]
    srs = [e for e in entries if e["kind"] == "sr"]
    cache, notes = ScoreCache(out), []

    def score_missing(todo: list[dict], scorer: str, fn) -> None:
        for batch in batches(todo, batch_size):
            for entry, values in zip(batch, fn(batch)):
                cache.add(entry, scorer, values)

    with_spec = [e for e in images if items[e["item"]].spec]
    score_missing(cache.missing(with_spec, "verifier"), "verifier",
                  lambda batch: [verifier_scores(im, items[e["item"]].spec) for e, im in zip(batch, _images(out, batch))])
    if not with_spec:
        notes.append("Exact scoring: not applicable, this suite has no shapes-world scene specs.")
    score_missing(cache.missing(srs, "sr"), "sr", lambda batch: sr_fidelity(
        _images(out, batch), [true_render_pair(items[e["item"]], e["seed"], e["low"], e["high"])[1] for e in batch]))

    clip_name, clip_scorer = resolve_clip(clip, shapes=bool(with_spec)), None
    if clip_name:
        try:
            clip_scorer = clip_cache_key(clip_name)
            if cache.missing(images, clip_scorer):
                scorer = ClipScorer(clip_name, device=device)
                score_missing(cache.missing(images, clip_scorer), clip_scorer, lambda batch: [
                    {"clip_score": v} for v in scorer(_images(out, batch), [e["prompt"] for e in batch])])
        except MetricUnavailable as err:
            notes.append(str(err))
            clip_name = clip_scorer = None
    elif clip == "auto":
        notes.append(f"CLIP score skipped: {HUB_CLIP} is not cached here, and shapes-CLIP, the offline "
                     "default, reads only shapes-world prompts (suites with scene specs); pass --clip NAME_OR_PATH.")
    else:
        notes.append("CLIP score skipped: no CLIP model given (--clip NAME_OR_PATH).")

    rows = []
    for entry in entries:
        base = {"model": entry["model"], "item": entry["item"], "prompt": entry["prompt"], "category": entry["category"],
                "seed": entry["seed"], "image": entry["image"]}
        values = {"seconds": entry["seconds"]} if entry["kind"] == "image" else {}
        for scorer in ("verifier", "sr", clip_scorer):
            values.update(cache.values.get((entry["key"], scorer), {}))
        rows.extend({**base, "metric": metric, "value": value} for metric, value in values.items())
    results = pd.DataFrame(rows, columns=["model", "item", "prompt", "category", "seed", "image", "metric", "value"])
    sets = set_metrics(out, run, items, images, features, reference, notes, reference_seeds, fid_resamples)
    return Scores(results, sets, notes, clip_name and clip_label(clip_name))


SET_COLUMNS = ["model", "metric", "value", "ci_low", "ci_high", "std", "resamples", "n", "n_reference"]


def set_metrics(out: Path, run: dict, items: dict[str, SuiteItem], images: list[dict], features: str,
                reference: Path | None, notes: list[str], reference_seeds: int | None = None,
                fid_resamples: int = FID_RESAMPLES) -> pd.DataFrame:
    """Fréchet / kernel distance of each model's images to the reference set (true renders or a folder).

    True renders: by default one per generated image, of its prompt at its seed; with `reference_seeds` K,
    K per prompt (seeds 0 .. K-1), so the reference set can be made as large as FID needs."""
    if features == "none":
        return pd.DataFrame(columns=SET_COLUMNS)
    if reference is None and not any(items[e["item"]].spec for e in images):
        notes.append("Fréchet/kernel distances skipped: no reference set (this suite has no scene specs; pass --reference DIR).")
        return pd.DataFrame(columns=SET_COLUMNS)
    if reference_seeds is not None and reference_seeds < 1:
        raise ValueError(f"--reference-seeds must be at least 1, got {reference_seeds}")
    try:
        net = feature_network(features)
    except MetricUnavailable as err:
        notes.append(str(err))
        return pd.DataFrame(columns=SET_COLUMNS)
    if getattr(net, "fallback", None):
        notes.append(net.fallback)
    # Reference features by what they depict: a folder once, or true renders once per (items and seeds, size),
    # so models sampled over the same plan share them.
    references: dict = {}
    if reference is not None:
        files = sorted(p for p in Path(reference).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        references[None] = net.embed(load_images(files))
    rows = []
    for model in run["models"]:
        mine = [e for e in images if e["model"] == model["name"]]
        if not mine:
            continue
        generated = _images(out, mine)
        depicted = None  # the reference folder
        if reference is None:
            pairs = [(e, im) for e, im in zip(mine, generated) if items[e["item"]].spec]
            generated = [im for _, im in pairs]
            size = generated[0].width if generated else 0
            if reference_seeds is None:
                drawn = tuple((e["item"], e["seed"]) for e, _ in pairs)
            else:
                drawn = tuple((i, seed) for i in dict.fromkeys(e["item"] for e, _ in pairs) for seed in range(reference_seeds))
            depicted = (drawn, size)
            if depicted not in references:
                references[depicted] = net.embed([reference_renders(items[i].spec, seed, size) for i, seed in drawn])
        try:
            values = distribution_distances(net.embed(generated), references[depicted], net.label,
                                                    fid_resamples=fid_resamples)
        except MetricUnavailable as err:
            notes.append(f"{model['name']}: {err}")
            continue
        rows.extend({"model": model["name"], **row} for row in values)
    return pd.DataFrame(rows, columns=SET_COLUMNS)


SUMMARY_COLUMNS = ["model", "category", "metric", "mean", "ci_low", "ci_high", "std", "n", "n_reference"]


def summarise(scores: Scores, run: dict) -> pd.DataFrame:
    """Mean and bootstrap 95% CI per model x category x metric, plus each model's overall row; a set-level
    distance is one overall row with its own interval (FID) or std (KID) and both set sizes."""
    rows = []
    results = scores.results
    for (model, metric), group in results.groupby(["model", "metric"], sort=False):
        for category, values in [*group.groupby("category", sort=False)["value"], (OVERALL, group["value"])]:
            mean, low, high = bootstrap_ci(values.to_numpy())
            rows.append({"model": model, "category": category, "metric": metric, "mean": mean,
                         "ci_low": low, "ci_high": high, "std": math.nan, "n": len(values), "n_reference": math.nan})
    for row in scores.sets.to_dict("records"):
        rows.append({"model": row["model"], "category": OVERALL, "metric": row["metric"], "mean": row["value"],
                     "ci_low": row["ci_low"], "ci_high": row["ci_high"], "std": row["std"], "n": row["n"],
                     "n_reference": row["n_reference"]})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_tables(out: Path, scores: Scores, summary: pd.DataFrame) -> None:
    for name, frame in ((RESULTS_FILE, scores.results), (SUMMARY_FILE, summary)):
        with atomic_path(Path(out) / name) as tmp:
            frame.to_csv(tmp, index=False)

