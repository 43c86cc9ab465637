"""Image-to-image networks: pix2pix's U-Net and PatchGAN, CycleGAN's ResNet generator and image pool.

- pix2pix, Isola et al. 2017, arXiv:1611.07004. G is a U-Net (Sec. 3.2.1, appendix 6.1.1):
  encoder C64-C128-C256-C512-C512-C512-C512-C512, decoder CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128
  (the decoder numbers count the skip channels concatenated from encoder layer n-i). Noise z enters only
  as dropout in the first three decoder layers, "applied at both training and test time" (Sec. 3.1):
  objective G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G) (Eq. 4).
  D is a PatchGAN (Sec. 3.2.2) on concat(x, y): it classifies each N x N patch; N = 70 for 3 layers.
- CycleGAN, Zhu et al. 2017, arXiv:1703.10593, appendix 7.2: c7s1-64, d128, d256, R256 x {6, 9}, u128,
  u64, c7s1-3 with reflection padding and instance norm; and the history of 50 generated images
  (Shrivastava et al. 2017, arXiv:1612.07828, Sec. 2.3) that D is trained on (Zhu Sec. 4).

Sizes come from arguments (resolution, channels, width), never from one class per resolution.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import GanforgeError
from ..nn.layers import norm2d


class ArchitectureError(GanforgeError, ValueError):
    """A size or option that the architecture cannot take (a ValueError, and printed cleanly by the CLI)."""


NORMS = ("batch", "instance", "layer")


def _norm(kind: str, channels: int) -> nn.Module:
    # instance: affine=False, no running stats: the reference implementation's instance norm (Ulyanov 2016)
    return norm2d(kind, channels, NORMS, instance_affine=False)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ArchitectureError(f"norm={norm!r} is not supported; use one of {NORMS}")


def init_normal_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN init: conv weights ~ N(0, std), norm scales ~ N(1, std), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


class NoiseDropout(nn.Dropout):
    """Dropout used as G's noise source: when `at_test` is set it stays active in eval() too (pix2pix Sec. 3.1)."""

    def __init__(self, p: float, at_test: bool):
        super().__init__(p)
        self.at_test = at_test

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.dropout(x, self.p, self.training or self.at_test)

    def extra_repr(self) -> str:
        return f"p={self.p}, at_test={self.at_test}"


# ---------------------------------------------------------------------------------------------- U-Net


class UNetGenerator(nn.Module):
    """pix2pix U-Net G: depth = log2(resolution) stride-2 convs down to 1x1, mirrored up with skips.

    Encoder layer i (1-based) has min(width * 2^(i-1), max_width) channels; decoder layer i concatenates
    encoder layer i. As in the paper, the first encoder layer has no norm; the innermost (1x1) has none
    either, because normalising a 1x1 map with batch size 1 (pix2pix's batch) or per instance zeroes it.

    Dropout (probability `dropout`) follows the first min(3, depth - 1) decoder layers: with depth 8 this is
    the paper's CD512-CD1024-CD1024; smaller images keep as many of those as fit, never the output layer.
    `test_time_dropout=True` (the paper's choice) keeps that dropout active after `G.eval()`, so two
    forwards on the same input differ: it is the only noise G receives. Set it False for a deterministic
    G in eval mode; `dropout=0` removes the noise altogether. Batch norm follows the usual train/eval
    switch (the paper also used batch statistics at test time: call `G.train()` under no_grad for that).
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 max_width: int = 512, dropout: float = 0.5, norm: str = "batch",
                 test_time_dropout: bool = True):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ArchitectureError(f"UNetGenerator needs a power-of-two resolution >= 8 (it halves down to "
                                    f"1x1), got {resolution}; resize or crop the images, e.g. to "
                                    f"{max(8, 2 ** round(math.log2(max(resolution, 1))))}")
        if not 0.0 <= dropout < 1.0:
            raise ArchitectureError(f"dropout={dropout} must be in [0, 1)")
        _check_norm(norm)
        self.resolution, self.depth = resolution, int(math.log2(resolution))
        c = [min(width * 2 ** i, max_width) for i in range(self.depth)]  # c[i]: encoder layer i+1
        bias = norm != "batch"  # batch norm's shift makes a conv bias redundant
        downs = []
        for i in range(self.depth):
            normed = 0 < i < self.depth - 1
            layers: list[nn.Module] = [nn.Conv2d(in_channels if i == 0 else c[i - 1], c[i], 4, 2, 1,
                                                 bias=bias or not normed)]
            if normed:
                layers.append(_norm(norm, c[i]))
            layers.append(nn.LeakyReLU(0.2))  # encoder ReLUs are leaky (appendix 6.1.1)
            downs.append(nn.Sequential(*layers))
        n_dropout = min(3, self.depth - 1)
        ups = []
        for k, i in enumerate(reversed(range(self.depth))):  # decoder from the innermost layer outwards
            c_in = c[i] if i == self.depth - 1 else 2 * c[i]  # skip concat doubles all but the innermost
            if i == 0:  # output layer: to image channels, tanh into [-1, 1]
                ups.append(nn.Sequential(nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            layers = [nn.ConvTranspose2d(c_in, c[i - 1], 4, 2, 1, bias=bias), _norm(norm, c[i - 1])]
            if k < n_dropout and dropout > 0:
                layers.append(NoiseDropout(dropout, test_time_dropout))
            layers.append(nn.ReLU())
            ups.append(nn.Sequential(*layers))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)
        init_normal_(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise ArchitectureError(f"UNetGenerator was built for {self.resolution}x{self.resolution} "
                                    f"inputs, got {tuple(x.shape[-2:])}")
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        skips.pop()  # the innermost activation feeds the decoder directly
        for up in self.ups:
            h = up(h)
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        return h


# ------------------------------------------------------------------------------------------- PatchGAN


def _patch_layout(layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of PatchDiscriminator's convs: `layers` stride-2 convs, then two stride-1 convs."""
    return [(4, 2)] * layers + [(4, 1), (4, 1)]


def patch_receptive_field(layers: int) -> int:
    """Side of the input patch one output logit sees: r <- (r - 1) * stride + kernel, from the output back.

    layers=3 gives 70 (pix2pix's 70x70 PatchGAN); 1 -> 16, 2 -> 34, 4 -> 142 ("ImageGAN" at 256 px).
    """
    r = 1
    for kernel, stride in reversed(_patch_layout(layers)):
        r = (r - 1) * stride + kernel
    return r


def patch_layers_for(resolution: int, max_layers: int = 3) -> int:
    """PatchGAN depth for small images: the most layers (<= max_layers) whose patch fits in the image.

    256 px -> 3 (70x70, the paper's), 64 -> 2 (34x34), 32 and below -> 1 (16x16, the smallest that still
    leaves a 2x2 logit map at 8 px).
    """
    layers = max_layers
    while layers > 1 and patch_receptive_field(layers) > resolution:
        layers -= 1
    return layers


class PatchDiscriminator(nn.Module):
    """PatchGAN D: C64-C128-C256-C512 for layers=3 (pix2pix appendix 6.1.2), one logit per patch.

    Input is what the recipe gives it: concat(x, y) for pix2pix (so in_channels = C_x + C_y), an image for
    CycleGAN. No norm on the first layer; channels double per layer up to 8 * width; LeakyReLU(0.2);
    logits, no sigmoid (the loss decides). Output N x 1 x H' x W' with H' = H / 2^layers - 2.
    """

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3, norm: str = "batch"):
        super().__init__()
        if layers < 1:
            raise ArchitectureError(f"PatchDiscriminator needs layers >= 1, got {layers}")
        _check_norm(norm)
        self.layers = layers
        self.receptive_field = patch_receptive_field(layers)
        bias = norm != "batch"
        seq: list[nn.Module] = []
        c_prev = in_channels
        layout = _patch_layout(layers)
        for j, (kernel, stride) in enumerate(layout):
            if j == len(layout) - 1:  # the last conv maps to one logit channel
                seq.append(nn.Conv2d(c_prev, 1, kernel, stride, 1))
                break
            c = width * min(2 ** j, 8)
            seq.append(nn.Conv2d(c_prev, c, kernel, stride, 1, bias=bias if j else True))
            if j:
                seq.append(_norm(norm, c))
            seq.append(nn.LeakyReLU(0.2))
            c_prev = c
        self.net = nn.Sequential(*seq)
        init_normal_(self)

    def forward(self, x: Tensor) -> Tensor:
        side = min(x.shape[-2:])
        if side // 2 ** self.layers < 3:
            raise ArchitectureError(f"a {self.layers}-layer PatchDiscriminator needs images of at least "
                                    f"{3 * 2 ** self.layers} px, got {tuple(x.shape[-2:])}; use "
                                    f"layers={patch_layers_for(side)} (patch_layers_for)")
        return self.net(x)


# ------------------------------------------------------------------------------------- ResNet generator


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3, norm, ReLU, reflect-pad, conv3, norm](x) (CycleGAN's R256)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN G (Johnson et al. 2016 layout): c7s1-w, d2w, d4w, R4w x blocks, u2w, uw, c7s1-out, tanh.

    The paper uses 6 blocks at 128 px (the default here: our images are small) and 9 at 256 px and
    above. Reflection padding avoids border artifacts. Input sides must be multiples of 4 (two stride-2
    downs) and at least 8 (reflection padding of the 2x2 bottleneck needs a side > 1).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, blocks: int = 6,
                 norm: str = "instance"):
        super().__init__()
        if blocks < 1:
            raise ArchitectureError(f"ResnetGenerator needs blocks >= 1 (the paper uses 6 or 9), got {blocks}")
        _check_norm(norm)
        bias = norm != "batch"
        seq: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias),
                                _norm(norm, width), nn.ReLU()]
        for mult in (1, 2):  # d2w, d4w
            seq += [nn.Conv2d(width * mult, width * mult * 2, 3, 2, 1, bias=bias),
                    _norm(norm, width * mult * 2), nn.ReLU()]
        seq += [ResnetBlock(width * 4, norm) for _ in range(blocks)]
        for mult in (4, 2):  # u2w, uw: fractionally strided convs (output_padding restores even sides)
            seq += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                    _norm(norm, width * mult // 2), nn.ReLU()]
        seq += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*seq)
        init_normal_(self)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 8:
            raise ArchitectureError(f"ResnetGenerator needs image sides that are multiples of 4 and >= 8, "
                                    f"got {h}x{w}; resize or crop the images")
        return self.net(x)


# ------------------------------------------------------------------------------------------ image pool


class ImagePool:
    """History of generated images for D's updates (Shrivastava 2017 Sec. 2.3; CycleGAN, size 50).

    `pool(fake)` returns a batch of the same shape. Until the pool holds `size` images, each incoming
    image is stored and returned as is. Once full, each image is, with probability 0.5, swapped: a
    uniformly chosen stored image is returned and the new one takes its place; otherwise it is returned
    as is. Returned and stored images are detached (the pool feeds the D step, which must not backprop
    into G). Randomness comes from the pool's own torch.Generator, so results depend only on `seed` and
    the images seen, and `state_dict()` (plain tensors: images and generator state) resumes exactly.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        if size < 0:
            raise ArchitectureError(f"ImagePool size must be >= 0 (0 disables the pool), got {size}")
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, fake: Tensor) -> Tensor:
        fake = fake.detach()
        if self.size == 0:
            return fake
        out = []
        for image in fake:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                j = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[j].to(image.device))  # a resumed pool's images start on the CPU
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        images = torch.stack(self.images) if self.images else torch.empty(0)
        return {"images": images.cpu(), "generator": self.generator.get_state(),
                "size": torch.tensor(self.size)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if int(state["size"]) != self.size:
            raise GanforgeError(f"ImagePool state has size {int(state['size'])}, this pool {self.size}; "
                                f"resume with the same pool size")
        self.images = [im.clone() for im in state["images"]]
        self.generator.set_state(state["generator"])


# JPEG's full-range YCbCr (ITU-R BT.601 luma, the weights data/images.set_channels uses for grey): linear, so
# in [-1, 1] units Y of an RGB grey (c, c, c) is c and its chroma (Cb, Cr) is 0
_CHROMA = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_FROM_YCBCR = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])


def rgb_to_chroma(rgb: Tensor) -> Tensor:
    """N x 3 x H x W RGB in [-1, 1] -> N x 2 x H x W (Cb, Cr), each in [-1, 1]."""
    return torch.einsum("ck,nkhw->nchw", _CHROMA.to(rgb), rgb)


def ycbcr_to_rgb(y: Tensor, chroma: Tensor) -> Tensor:
    """N x 1 luma and N x 2 chroma in [-1, 1] -> N x 3 RGB, clamped to [-1, 1] (out-of-gamut pairs)."""
    return torch.einsum("ck,nkhw->nchw", _FROM_YCBCR.to(y), torch.cat([y, chroma], 1)).clamp(-1, 1)


class KeepLuma(nn.Module):
    """Colourisation that keeps the grey input as the output's luma: `net` maps the N x 1 luma to 2 chroma
    channels (Cb, Cr) and the output is the RGB of (input luma, predicted chroma). pix2pix colourised this
    way, L -> ab (Isola et al. 2017, Sec. 4.5, after Zhang et al. 2016); YCbCr instead of Lab because the
    grey input is BT.601 luma exactly, so the output's luma is the input's wherever it stays in gamut and G
    spends its capacity on colour alone, not on redrawing the brightness it was given."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, y: Tensor) -> Tensor:
        if y.shape[1] != 1:
            raise ArchitectureError(f"KeepLuma takes a 1-channel luma input, got {y.shape[1]} channels")
        return ycbcr_to_rgb(y, self.net(y))
