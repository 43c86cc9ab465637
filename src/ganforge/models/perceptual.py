"""Feature networks phi for perceptual (content) losses: ||phi(fake) - phi(real)||^2.

- VGG19Features: SRGAN's VGG loss (Ledig et al. 2017, arXiv:1609.04802, Eq. 5): phi_{i,j} is the
  feature map after the j-th convolution's ReLU before the i-th max-pool of the ImageNet-trained
  VGG19 (Simonyan & Zisserman 2014, arXiv:1409.1556); Ledig uses phi_{5,4} ("conv5_4") and phi_{2,2}.
  The module reproduces torchvision's `vgg19().features` indices, so torchvision's released file
  vgg19-dcbb9e9d.pth (keys `features.N.weight` / `features.N.bias`) loads into it unchanged.
- RandomConvFeatures: the offline default. A fixed, seeded, untrained multi-scale conv net. Random
  conv features are a known working baseline for image representation: shallow nets with random
  filters model natural textures (Ustyuzhaninov et al. 2016, arXiv:1606.00021), random-weight VGGs
  invert and restyle images (He, Wang & Hopcroft, NeurIPS 2016), and an untrained conv net's
  structure alone is a strong image prior (Ulyanov et al., "Deep Image Prior", arXiv:1711.10925).
  It is a stand-in, not VGG: its loss values are not comparable with published VGG-loss numbers,
  and the run config records which network was used (build_feature_net's description).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init

from ..download import file_hash, read_state_dict, weights_file
from ..errors import GanforgeError
from ..registry import suggest

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# torchvision's configuration "E": conv widths, "M" = 2x2 max-pool
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layers() -> dict[str, int]:
    """Conv name -> index in torchvision's vgg19().features (each conv is followed by its ReLU at index+1).

    conv1_1 0, conv1_2 2, conv2_1 5, conv2_2 7, conv3_1..3_4 10 12 14 16, conv4_1..4_4 19 21 23 25,
    conv5_1..5_4 28 30 32 34; pools at 4 9 18 27 36.
    """
    names, index, block, j = {}, 0, 1, 1
    for v in VGG19_CFG:
        if v == "M":
            index, block, j = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{j}"] = index
            index, j = index + 2, j + 1
    return names


class VGG19Features(nn.Module):
    """VGG19 `features` up to and including the ReLU after `layer` (phi_{i,j} for layer "convi_j").

    Input: images in [-1, 1], 3 channels (1-channel images are repeated to grey RGB); mapped to [0, 1]
    and ImageNet-normalised, as torchvision's weights expect. Parameters are frozen; gradients flow to
    the input. Built zero-initialised: use `VGG19Features.pretrained(...)` (or `load_weights`) for the
    trained network.
    """

    def __init__(self, layer: str = "conv5_4"):
        super().__init__()
        names = vgg19_layers()
        if layer not in names:
            raise GanforgeError(f"unknown VGG19 layer {layer!r}{suggest(layer, names)}; choose one of "
                                f"{', '.join(names)}")
        self.layer, last = layer, names[layer] + 1  # + 1: include the conv's ReLU (Ledig's phi)
        seq: list[nn.Module] = []
        c_prev = 3
        for v in VGG19_CFG:
            if len(seq) > last:
                break
            if v == "M":
                seq.append(nn.MaxPool2d(2, 2))
            else:
                # skip_init: no draw from the global RNG for weights that are about to be overwritten
                conv = skip_init(nn.Conv2d, c_prev, v, 3, padding=1)
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
                seq += [conv, nn.ReLU()]
                c_prev = v
        self.features = nn.Sequential(*seq[:last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.weights_path: str | None = None
        self.weights_sha256: str | None = None

    @classmethod
    def pretrained(cls, layer: str = "conv5_4", weights=None, download: bool = False, cache_dir=None,
                   url: str = VGG19_URL) -> "VGG19Features":
        """Trained VGG19 from `weights` (a path), else the cache, else (download=True) `url`."""
        net = cls(layer)
        match = re.search(r"-([0-9a-f]{6,})\.", url.rsplit("/", 1)[-1])   # torchvision's name-<sha256 prefix>.ext
        net.load_weights(weights_file(weights, cache_dir, download, url, what="VGG19 weights", flag="weights=PATH",
                                      expected=match.group(1) if match else None,
                                      offline=", or use the offline feature net 'random'"))
        return net

    def load_weights(self, path) -> None:
        """Load torchvision-layout weights: every key this truncated network has must be in the file with
        its shape; `features.N.*` keys at or below our last index that we lack (another layout, e.g.
        vgg19_bn) are an error; deeper features and the classifier are ignored."""
        state = read_state_dict(path, "torchvision vgg19-dcbb9e9d.pth")
        own = self.state_dict()
        last = len(self.features) - 1
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if re.fullmatch(r"features\.(\d+)\..+", k)
                      and int(k.split(".")[1]) <= last and k not in own]
        if missing or unexpected:
            raise GanforgeError(f"{path} does not have torchvision's vgg19 layout up to {self.layer}: missing "
                                f"{missing[:4]}, unexpected {unexpected[:4]}; pass vgg19-dcbb9e9d.pth")
        try:
            self.load_state_dict({k: state[k] for k in own}, strict=True)
        except RuntimeError as e:  # shape mismatches
            raise GanforgeError(f"{path} does not match VGG19 up to {self.layer}: {e}") from e
        self.weights_path, self.weights_sha256 = str(path), file_hash(path)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean) / self.std  # [-1, 1] -> [0, 1] -> ImageNet statistics
        return self.features(x)


class RandomConvFeatures(nn.Module):
    """Fixed random multi-scale features: `scales` blocks [conv3, ReLU, conv3, ReLU], 2x average-pool
    between blocks, widths width * 2^s. Weights are He-normal draws from a torch.Generator seeded with
    `seed` (the global RNG is untouched), biases 0, all frozen: the same seed gives the same net anywhere.

    Output: N x D, the flattened features of every scale, each scaled by sqrt(D / (scales * D_s)) so that
    the MSE over the output equals the mean over scales of each scale's MSE (big maps do not dominate).
    Inputs in [-1, 1] are used as they are; 1-channel inputs are repeated if the net expects more.
    """

    def __init__(self, channels: int = 3, width: int = 32, scales: int = 3, seed: int = 0):
        super().__init__()
        if scales < 1:
            raise GanforgeError(f"RandomConvFeatures needs scales >= 1, got {scales}")
        self.channels, self.width, self.seed = channels, width, seed
        gen = torch.Generator().manual_seed(seed)
        blocks = []
        c_prev = channels
        for s in range(scales):
            c = width * 2 ** s
            convs = [skip_init(nn.Conv2d, c_prev, c, 3, padding=1), skip_init(nn.Conv2d, c, c, 3, padding=1)]
            for conv in convs:
                fan_in = conv.in_channels * 9
                with torch.no_grad():
                    # He init keeps the features' scale roughly constant through the ReLUs
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                    conv.bias.zero_()
            blocks.append(nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU()))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1 and self.channels > 1:
            x = x.expand(-1, self.channels, -1, -1)
        feats = []
        h = x
        for s, block in enumerate(self.blocks):
            if s:
                h = F.avg_pool2d(h, 2)
            h = block(h)
            feats.append(h.flatten(1))
        total = sum(f.shape[1] for f in feats)
        return torch.cat([f * math.sqrt(total / (len(feats) * f.shape[1])) for f in feats], dim=1)


FEATURE_NETS = ("vgg19", "random")


def build_feature_net(name: str = "random", weights=None, download: bool = False, *, layer: str = "conv5_4",
                      channels: int = 3, seed: int = 0, cache_dir=None, url: str = VGG19_URL
                      ) -> tuple[nn.Module, dict]:
    """The perceptual-loss network and a description of it for the run config.

    "random" (default, offline): RandomConvFeatures(channels, seed=seed). "vgg19": trained VGG19 features
    up to `layer`, weights from `weights`, the cache, or a download when `download=True`.
    """
    if name == "random":
        if weights is not None:
            raise GanforgeError("weights= applies to the 'vgg19' feature net; the 'random' net is made from "
                                "its seed. Drop weights, or use name='vgg19'")
        net = RandomConvFeatures(channels=channels, seed=seed)
        return net, {"name": "random", "net": "RandomConvFeatures", "channels": channels, "width": net.width,
                     "scales": len(net.blocks), "seed": seed,
                     "note": "untrained seeded stand-in for VGG19; losses are not comparable with VGG losses"}
    if name == "vgg19":
        net = VGG19Features.pretrained(layer, weights=weights, download=download, cache_dir=cache_dir, url=url)
        return net, {"name": "vgg19", "layer": layer, "weights": net.weights_path,
                     "weights_sha256": net.weights_sha256, "input": "[-1, 1] -> [0, 1] -> ImageNet mean/std"}
    raise GanforgeError(f"unknown feature net {name!r}{suggest(name, FEATURE_NETS)}; use one of {FEATURE_NETS}")
