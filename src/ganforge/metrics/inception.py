"""The FID Inception-v3 feature extractor in plain PyTorch (no torchvision).

Network: Inception-v3 (Szegedy et al. 2015, arXiv:1512.00567) as the 2015 TF graph used for FID
(Heusel et al. 2017, arXiv:1706.08500), in the pytorch-fid port: torchvision's Inception3 with the
FIDInceptionA / C / E_1 blocks (3x3 average pools with count_include_pad=False) and FIDInceptionE_2
(3x3 max pool in the pool branch), BatchNorm eps 0.001, no auxiliary head, fc 2048 -> 1008.
Module names match `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid, torch-fidelity) exactly.

Outputs: `pool` (the 2048-d global average pool, FID's features), `logits` (fc over 1008 classes, with its
bias) and `logits_unbiased` (pool @ fc.weight.T: what Salimans et al.'s IS code and torch-fidelity's isc
use). Preprocessing: the named protocol (metrics/protocols.py), `pytorch-fid` by default.

Weights: the canonical file is pytorch-fid's release, whose name carries the first 8 hex digits of its
SHA-256 (torch.hub's convention). Every load hashes the file; a file whose hash does not start with them
is loaded (random or fine-tuned weights are legitimate for tests) but recorded as `canonical: false` and
announced with a warning line: its numbers are not comparable to any published FID.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import copy
import sys

import torch
import torch.nn.functional as F
from torch import nn

from ..download import file_hash, load_strict, read_state_dict, weights_file
from ..errors import GanforgeError
from . import protocols

NAME = "pt_inception-2015-12-05-6726825d.pth"
DEFAULT_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + NAME
CANONICAL_SHA256_PREFIX = "6726825d"     # the hash in the official file name


def preprocess(images: torch.Tensor, protocol: str = "pytorch-fid") -> torch.Tensor:
    """Images N x C x H x W in [-1, 1] holding 8-bit levels (C = 1 or 3) -> N x 3 x 299 x 299 in [-1, 1],
    resized and normalised as `protocol` says (metrics/protocols.py)."""
    return protocols.prepare(images, protocol, 299, "inception")


class BasicConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, **conv):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **conv)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)  # the TF graph's epsilon

    def forward(self, x):
        if self.bn is None:         # folded (`fused`): conv with BN's affine map in its weights, ReLU in place
            return F.relu_(self.conv(x))
        return F.relu(self.bn(self.conv(x)))

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the eval-mode BatchNorm (y = (x - mean) / sqrt(var + eps) * gamma + beta) into the conv."""
        c, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                         device=c.weight.device, dtype=c.weight.dtype)
        conv.weight.copy_(c.weight * scale.view(-1, 1, 1, 1))
        conv.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = conv, None


def _avg_pool(x):
    # the TF graph averages over valid pixels only at the borders
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x):
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (pool="avg", pytorch-fid's FIDInceptionE_1) and Mixed_7c (pool="max", FIDInceptionE_2)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        # the TF graph's last block max-pools here (likely a slip in that graph; FID keeps it)
        pooled = (F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.pool == "max"
                  else _avg_pool(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class InceptionFID(nn.Module):
    """FID Inception-v3: forward(images in [-1, 1]) -> {"pool": N x 2048, "logits": N x 1008}.

    Built in eval mode (BatchNorm uses the stored running statistics). Weights: `load_inception`.
    `protocol` names the preprocessing (metrics/protocols.py).
    """

    def __init__(self, protocol: str = "pytorch-fid"):
        super().__init__()
        self.preprocessing = protocols.get(protocol).name
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, c7=128)
        self.Mixed_6c = FIDInceptionC(768, c7=160)
        self.Mixed_6d = FIDInceptionC(768, c7=160)
        self.Mixed_6e = FIDInceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)
        self.layout = torch.contiguous_format      # `fused` copies run channels_last
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.trunk(preprocess(images, self.preprocessing))

    def trunk(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network on an already prepared N x 3 x 299 x 299 input."""
        x = x.contiguous(memory_format=self.layout)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return {"pool": pool, "logits": self.fc(pool), "logits_unbiased": pool @ self.fc.weight.T}


def fused(model: InceptionFID) -> InceptionFID:
    """An inference copy of `model` computing the same features faster (the FID extractor runs it; equal to the
    plain model within fp32 rounding, ~1e-6 relative, tests/test_inception.py): every BatchNorm folded into
    its conv (eval-mode BN is an affine map per channel), ReLU in place, weights and activations channels_last
    (the layout oneDNN and cuDNN compute convolutions in: no reorder per layer). Measured in
    benchmarks/throughput.py (docs/performance.md)."""
    out = copy.deepcopy(model).eval().requires_grad_(False)
    for m in out.modules():
        if isinstance(m, BasicConv2d):
            m.fold()
    out.layout = torch.channels_last
    return out.to(memory_format=torch.channels_last)


def weights_sha256(path) -> str:
    """Hex SHA-256 of a file (recorded with every metric as the weights' identity)."""
    return file_hash(path, "sha256")


def load_inception(weights=None, cache_dir=None, download: bool = False, url: str = DEFAULT_URL,
                   sha256_prefix: str = CANONICAL_SHA256_PREFIX, protocol: str = "pytorch-fid") -> InceptionFID:
    """Build InceptionFID and load its weights from `weights`, else the cache, else (download=True) `url`.

    The returned model (eval mode) carries `protocol`: extractor, weights path and SHA-256, whether they are
    the canonical file, the preprocessing protocol and its resize.
    """
    path = weights_file(weights, cache_dir, download, url, what="FID Inception weights", flag="--weights PATH",
                        expected=sha256_prefix, download_flag="--download")
    model = InceptionFID(protocol)
    state = read_state_dict(path, NAME)
    for key, value in model.state_dict().items():
        # the released file predates BatchNorm's counter; it is unused in eval mode
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    load_strict(model, state, path, "FID Inception-v3",
                "; pass --weights with pt_inception-2015-12-05-6726825d.pth")
    sha = weights_sha256(path)
    canonical = sha.startswith(CANONICAL_SHA256_PREFIX)
    if not canonical:
        print(f"ganforge: warning: {path} (SHA-256 {sha[:16]}...) is not the canonical {NAME} (SHA-256 "
              f"{CANONICAL_SHA256_PREFIX}...): its FID / IS / KID are not comparable to published numbers",
              file=sys.stderr)
    model.protocol = {"extractor": "inception", "weights": str(path), "weights_sha256": sha,
                      "canonical": canonical, "protocol": model.preprocessing,
                      "resize": protocols.get(model.preprocessing).resize}
    return model.eval()


@torch.no_grad()
def extract(model: nn.Module, images, batch_size: int = 50):
    """Run `model` over images in batches without gradients; outputs are concatenated on the CPU.

    `images` is an N x C x H x W tensor (sliced into batches) or an iterable of such batches (e.g. a
    generator sampling G). A model returning a dict gives a dict of N x ... tensors.
    """
    if batch_size < 1:
        raise GanforgeError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    batches: Iterable = (images.split(batch_size) if isinstance(images, torch.Tensor) else images)
    outputs = []
    for batch in batches:
        out = model(batch.to(device))
        outputs.append({k: v.cpu() for k, v in out.items()} if isinstance(out, Mapping) else out.cpu())
    if not outputs:
        raise GanforgeError("extract got no images")
    if isinstance(outputs[0], dict):
        return {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
    return torch.cat(outputs)
