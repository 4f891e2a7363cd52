"""Training data: the shapes world (streamed), an image folder with captions, a Hugging Face dataset.

Every source answers `batch(index, batch_size, size)` deterministically from (seed, index), so a resumed
run sees exactly the batches an uninterrupted run would have seen: no data-loader state to save.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from ..core.loading import missing
from ..shapes import CATEGORIES, sample_example

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def model_range_tensor(images: list[PIL.Image.Image]) -> torch.Tensor:
    """PIL images -> float tensor (batch, 3, H, W) in [-1, 1], the range the U-Nets denoise."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def square(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """Centre crop to a square, then resize (anti-aliased) to size x size."""
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    return image.convert("RGB").crop(box).resize((size, size), PIL.Image.Resampling.LANCZOS)


class ShapesData:
    """The procedural shapes world: an endless, seeded stream of captioned renders.

    `plain_background` is the share of plain backgrounds: test prompts never name a background, so a base model
    spends less capacity on texture when most of its images are plain. `curriculum` is a list of phases
    ``{"until_images": N, "categories": {category: weight}}``; the last phase may leave out `until_images`. Early
    phases of single large objects raise the weak shape signal before composition (arXiv 2406.19370). Without a
    curriculum every category is equally likely.
    """

    def __init__(self, seed: int = 0, split: str = "train", language: str = "en", plain_background: float = 0.5,
                 curriculum: list[dict] | None = None):
        if not 0 <= plain_background <= 1:
            raise ValueError(f"plain_background must be in [0, 1], got {plain_background}")
        self.seed, self.split, self.language, self.plain_background = seed, split, language, plain_background
        self.phases = []  # (until_images, categories, probabilities)
        for i, phase in enumerate(curriculum or []):
            weights = phase.get("categories", {})
            unknown = set(weights) - set(CATEGORIES) or set(phase) - {"until_images", "categories"}
            if unknown or not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
                raise ValueError(f"curriculum phase {i + 1} needs non-negative weights over {CATEGORIES}, got {phase}")
            total = sum(weights.values())
            self.phases.append((phase.get("until_images", math.inf), list(weights), [w / total for w in weights.values()]))

    def category(self, images_seen: int, rng: np.random.Generator) -> str | None:
        """The category of the next example by the curriculum (None: uniform, decided by the sampler)."""
        for until, names, probabilities in self.phases:
            if images_seen < until:
                return names[int(rng.choice(len(names), p=probabilities))]
        return None

    def batch(self, index: int, batch_size: int, size: int) -> tuple[list[str], torch.Tensor]:
        captions, images = [], []
        for i in range(batch_size):
            rng = np.random.default_rng([self.seed, index, i])
            example = sample_example(rng, sizes=(size,), split=self.split, language=self.language,
                                     category=self.category(index * batch_size + i, rng),
                                     plain_background=self.plain_background)
            captions.append(example.caption)
            images.append(example.images[size])
        return captions, model_range_tensor(images)


class _IndexedData:
    """A finite set of (caption, image) pairs, visited in a fresh seeded order every epoch."""

    seed: int
    _order: tuple[int, np.ndarray] | None = None  # (epoch, permutation) of the epoch being read

    def __len__(self) -> int:
        raise NotImplementedError

    def example(self, i: int) -> tuple[str, PIL.Image.Image]:
        raise NotImplementedError

    def batch(self, index: int, batch_size: int, size: int) -> tuple[list[str], torch.Tensor]:
        n = len(self)
        captions, images = [], []
        for position in range(index * batch_size, (index + 1) * batch_size):
            epoch, offset = divmod(position, n)
            if self._order is None or self._order[0] != epoch:
                self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
            caption, image = self.example(int(self._order[1][offset]))
            captions.append(caption)
            images.append(square(image, size))
        return captions, model_range_tensor(images)


class ImageFolderData(_IndexedData):
    """Images with a caption each: `name.txt` beside `name.png`, or a `captions.jsonl` of {"file", "caption"}."""

    def __init__(self, root: str | Path, seed: int = 0):
        self.root, self.seed = Path(root), seed
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        index_file = self.root / "captions.jsonl"
        if index_file.is_file():
            rows = [json.loads(line) for line in index_file.read_text().splitlines() if line.strip()]
            self.items = [(self.root / row["file"], row["caption"]) for row in rows]
        else:
            self.items = [
                (path, path.with_suffix(".txt").read_text().strip())
                for path in sorted(self.root.rglob("*"))
                if path.suffix.lower() in IMAGE_SUFFIXES and path.with_suffix(".txt").is_file()
            ]
        if not self.items:
            raise ValueError(f"{self.root} has no captioned images (name.txt beside each image, or captions.jsonl)")

    def __len__(self) -> int:
        return len(self.items)

    def example(self, i: int) -> tuple[str, PIL.Image.Image]:
        path, caption = self.items[i]
        with PIL.Image.open(path) as image:
            return caption, image.convert("RGB")


class HuggingFaceData(_IndexedData):
    """A `datasets` dataset with an image column and a caption column (from the local cache when offline)."""

    def __init__(self, name: str, split: str = "train", image_column: str = "image", caption_column: str = "text", seed: int = 0):
        try:  # an optional dependency, imported where its absence can be reported
            import datasets
        except ImportError as err:
            raise ImportError("Hugging Face datasets need `pip install datasets`") from err

        try:
            self.dataset = datasets.load_dataset(name, split=split)
        except Exception as err:  # not cached and no hub: one sentence instead of a deep traceback
            raise missing("Dataset", name) from err
        self.image_column, self.caption_column, self.seed = image_column, caption_column, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def example(self, i: int) -> tuple[str, PIL.Image.Image]:
        row = self.dataset[i]
        return row[self.caption_column], row[self.image_column]


def make_data(spec: dict, seed: int):
    """Build a data source from a recipe's [data] table."""
    spec = dict(spec)
    kind = spec.pop("kind", "shapes")
    sources = {"shapes": ShapesData, "folder": ImageFolderData, "huggingface": HuggingFaceData}
    if kind not in sources:
        raise ValueError(f"unknown data kind {kind!r}; choose one of {sorted(sources)}")
    return sources[kind](seed=seed, **spec)
