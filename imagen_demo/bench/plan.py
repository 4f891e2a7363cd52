"""The work of a run: which (model, item, seed) each phase samples, which of them the manifest already holds, and how
long the rest should take. The runner samples this plan and ``run --dry-run`` prints it, so both count alike."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from imagen_demo.registry import TextToImageModel

from .manifest import Manifest, entry_key, fingerprint
from .suite import SuiteItem

IMAGE, SR = "image", "sr"  # generated images; super-resolved true renders (PSNR/SSIM)


@dataclass
class Work:
    """One model's jobs in one phase, in the order a lone process samples them."""

    kind: str
    model: TextToImageModel
    fingerprint: str
    jobs: list[tuple[SuiteItem, int]]  # (item, seed)

    @property
    def label(self) -> str:
        return self.model.name + (" SR" if self.kind == SR else "")

    def key(self, item: SuiteItem, seed: int) -> str:
        return entry_key(self.kind, self.model.name, self.fingerprint, item.id, seed)

    def pending(self, manifest: Manifest) -> list[str]:
        return [key for item, seed in self.jobs if not manifest.done(key := self.key(item, seed))]


def image_work(items: list[SuiteItem], seeds: list[int], models: list[TextToImageModel]) -> list[Work]:
    """Every prompt once per seed for every model: seed by seed, items in suite order."""
    return [Work(IMAGE, model, fingerprint(model), [(item, seed) for seed in seeds for item in items])
            for model in models]


def sr_work(items: list[SuiteItem], seed: int, models: list[TextToImageModel], limit: int) -> list[Work]:
    """For cascades: the first `limit` spec items' true renders, to super-resolve at one seed."""
    chosen = [(item, seed) for item in items if item.spec][:max(limit, 0)]
    return [Work(SR, model, fingerprint(model), chosen) for model in models if len(model.sizes) >= 2 and chosen]


def _many(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def recorded_seconds(manifest: Manifest, work: Work) -> list[float]:
    """The sampling seconds per image the manifest holds for this model's earlier images of this kind."""
    return [e["seconds"] for e in manifest.entries.values()
            if (e.get("kind"), e.get("model"), e.get("fingerprint")) == (work.kind, work.model.name, work.fingerprint)]


def describe_work(manifest: Manifest, items: list[SuiteItem], seeds: list[int], images: list[Work], srs: list[Work],
                  processes: int = 1) -> list[str]:
    """What `run --dry-run` prints: the amount of work, how much of it is done, and the sampling time left, estimated
    from the seconds per image the manifest recorded for the same models ("unknown" where it has none)."""
    phases = [(f"images: {_many(len(images), 'model')} × {_many(len(items), 'item')} × {_many(len(seeds), 'seed')}",
               images)]
    if srs:
        phases.append((f"super-resolved true renders: {_many(len(srs), 'cascade')} × "
                       f"{_many(len(srs[0].jobs), 'spec item')}", srs))
    lines, seconds, untimed = [], 0.0, []
    for heading, work in phases:
        left = [len(w.pending(manifest)) for w in work]
        total = sum(len(w.jobs) for w in work)
        lines.append(f"{heading} = {total}; {total - sum(left)} done, {sum(left)} to make")
        for w, todo in zip(work, left):
            timed = recorded_seconds(manifest, w)
            pace = (f"{mean(timed):.2f} s per image (mean of {len(timed)} earlier)" if timed
                    else "no earlier images to time")
            lines.append(f"  {w.label}: {len(w.jobs) - todo} done, {todo} to make, {pace}")
            if todo and not timed:
                untimed.append(w.label)
            elif todo:
                seconds += todo * mean(timed)
    if untimed:
        return [*lines, f"time left: unknown (no earlier images of {', '.join(untimed)} in the manifest)"]
    return [*lines, f"time left: about {seconds / processes:.0f} s of sampling on "
                    f"{_many(processes, 'process', 'processes')}, at the earlier images' pace; loading and scoring "
                    "come on top"]
