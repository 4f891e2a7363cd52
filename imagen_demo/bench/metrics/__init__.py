"""Benchmark metrics, one module a job, computed by torchmetrics (and open_clip) rather than by hand.

- `clip_score`: CLIP score per image, from a hub CLIP when one is cached, else from shapes-CLIP (`shapes_clip`),
  a small CLIP trained on the shapes world.
- `features` (with `inception`): the frozen feature networks behind Fréchet and kernel distances: the FID
  Inception-v3, or an ImageNet EfficientNet-Lite0 whose numbers are named for it, not FID.
- `distances`: Fréchet and kernel distances between generated and reference images, with their spread.
- `fidelity`: PSNR / SSIM of super-resolved images against ground truth.
- `exact`: exact compositional correctness from the shapes-world verifier.
- `statistics`: percentile-bootstrap confidence intervals for per-category means.

A metric whose weights are missing raises `MetricUnavailable`; the runner writes its one-line message into the
report and carries on with the other metrics.
"""


class MetricUnavailable(RuntimeError):
    """The weights a metric needs are not on this machine; the message says what to provide."""
