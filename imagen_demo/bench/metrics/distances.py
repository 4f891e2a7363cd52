"""Fréchet and kernel distances between two sets of image features (`features.ImageFeatures.embed`), torchmetrics'
own, with the numbers behind them: FID with a bootstrap interval, KID with its std over subsets, and both with how
many images they rest on.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from . import MetricUnavailable


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
    # Imported on use: torchmetrics takes seconds to import, and the demo and a run without distances never need it.
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
