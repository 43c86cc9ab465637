"""StyleGAN / StyleGAN2 generator, residual discriminator, style mixing, truncation and path length.

StyleGAN: Karras et al. 2019, arXiv:1812.04948. §2 and Fig. 1: a mapping MLP f: z -> w of 8 layers
(PixelNorm on z; learning rate x 0.01, App. C), a learned constant 4x4 input, AdaIN after every conv
(eq. 1), single-channel noise with learned per-channel scales before every AdaIN (§3.2). §3.1 style
mixing: two latents z1, z2 mapped to w1, w2, with w1 driving the layers before a crossover point and w2
those after. §3 / App. B truncation: w' = w_avg + psi (w - w_avg), with w_avg tracked during training.
StyleGAN2: Karras et al. 2020, arXiv:1912.04958. §2.2 eq. 1-3 modulated / demodulated 3x3 convs
replace AdaIN (noise and bias after the conv), Fig. 7 skip generator (up-sampled sum of toRGB outputs)
and residual discriminator, §3.2 eq. 4 path length regularization
E_{w,y}(||J_w^T y||_2 - a)^2 with y ~ N(0, I) / sqrt(H W) and a a running mean of the lengths.
Style index i drives conv layer i; in "modulated" mode toRGB of block b shares w_{2b+1} with the
next block's first conv, so both modes take num_ws = 2 log2(resolution) - 2 styles (18 at 1024).
Outputs are linear, as in the papers.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GanforgeError
from ..nn.style import AdaIN, EqualizedConv2d, EqualizedLinear, ModulatedConv2d, NoiseInjection, PixelNorm
from .progressive import output_block, stage_widths

MODES = ("adain", "modulated")


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class MappingNetwork(nn.Module):
    """f: z -> w, PixelNorm(z) then `layers` equalized dense layers with leaky ReLU (StyleGAN §2)."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 8, lr_mul: float = 0.01):
        super().__init__()
        if layers < 1:
            raise GanforgeError(f"the mapping network needs layers >= 1 (got {layers})")
        self.z_dim, self.w_dim = z_dim, w_dim
        dims = [z_dim] + [w_dim] * layers
        net = [PixelNorm()]
        for a, b in zip(dims[:-1], dims[1:]):
            net += [EqualizedLinear(a, b, lr_mul=lr_mul), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*net)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise GanforgeError(f"the mapping network expects z of shape N x {self.z_dim} (got {tuple(z.shape)})")
        return self.net(z)


class _StyleLayer(nn.Module):
    """One style layer. adain: [up] conv -> noise -> bias -> lrelu -> AdaIN(w) (StyleGAN Fig. 1b; the
    first 4x4 layer has no conv). modulated: modconv(w) [up] -> noise -> bias -> lrelu (StyleGAN2 Fig. 2c)."""

    def __init__(self, in_width: int | None, out_width: int, w_dim: int, size: int, mode: str, up: bool = False):
        super().__init__()
        self.mode, self.up = mode, up
        if mode == "modulated":
            self.conv = ModulatedConv2d(in_width, out_width, 3, w_dim, demodulate=True, up=up)
        else:
            self.conv = None if in_width is None else EqualizedConv2d(in_width, out_width, 3, bias=False)
            self.adain = AdaIN(out_width, w_dim)
        self.noise = NoiseInjection(out_width)
        self.bias = nn.Parameter(torch.zeros(out_width))
        # fixed noise for noise="const": reproducible samples, saved with the weights
        self.register_buffer("noise_const", torch.randn(1, 1, size, size))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None,
                generator: torch.Generator | None) -> torch.Tensor:
        if self.mode == "modulated":
            x = self.conv(x, w)
        elif self.conv is not None:
            x = self.conv(_up(x) if self.up else x)
        x = F.leaky_relu(self.noise(x, noise, generator) + self.bias.view(1, -1, 1, 1), 0.2)
        return x if self.mode == "modulated" else self.adain(x, w)


class _ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias (StyleGAN2 skip generator)."""

    def __init__(self, in_width: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_width, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


def mix_styles(w1: torch.Tensor, w2: torch.Tensor, crossover: int) -> torch.Tensor:
    """Style mixing (StyleGAN §3.1): ws N x L x w_dim taking layers [0, crossover) from w1 and
    [crossover, L) from w2; crossover = L keeps w1 everywhere."""
    if w1.dim() != 3 or w1.shape != w2.shape:
        raise GanforgeError(f"mix_styles expects two ws of the same shape N x num_ws x w_dim "
                            f"(got {tuple(w1.shape)} and {tuple(w2.shape)})")
    if not 0 <= crossover <= w1.shape[1]:
        raise GanforgeError(f"crossover {crossover} is out of range 0..{w1.shape[1]} (num_ws)")
    return torch.cat([w1[:, :crossover], w2[:, crossover:]], dim=1)


def draw_crossover(num_ws: int, prob: float, generator: torch.Generator | None = None) -> int:
    """With probability `prob` (StyleGAN: 0.9) a crossover uniform in 1..num_ws-1, else num_ws (no
    mixing); one per minibatch, as in the reference code. Always draws twice, so the RNG stream does
    not depend on the outcome."""
    if not 0.0 <= prob <= 1.0:
        raise GanforgeError(f"style_mixing_prob must be in [0, 1] (got {prob})")
    u = torch.rand((), generator=generator).item()
    cut = int(torch.randint(1, max(num_ws, 2), (), generator=generator).item())
    return cut if u < prob and num_ws > 1 else num_ws


class StyleGenerator(nn.Module):
    """G(z) = synthesis(styles(z)) -> N x channels x resolution^2 images."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, resolution: int = 32, channels: int = 3,
                 width: int = 64, max_width: int = 256, mapping_layers: int = 8,
                 mapping_lr_mul: float = 0.01, mode: str = "adain"):
        super().__init__()
        if mode not in MODES:
            raise GanforgeError(f"unknown StyleGenerator mode {mode!r}; use one of {MODES}")
        widths = stage_widths(resolution, width, max_width)
        self.z_dim, self.w_dim, self.resolution, self.channels, self.mode = z_dim, w_dim, resolution, channels, mode
        self.mapping_network = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mul)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.const = nn.Parameter(torch.randn(1, widths[0], 4, 4))
        if mode == "adain":
            layers = [_StyleLayer(None, widths[0], w_dim, 4, mode), _StyleLayer(widths[0], widths[0], w_dim, 4, mode)]
        else:
            layers = [_StyleLayer(widths[0], widths[0], w_dim, 4, mode)]
        for k in range(1, len(widths)):
            size = 4 * 2 ** k
            layers += [_StyleLayer(widths[k - 1], widths[k], w_dim, size, mode, up=True),
                       _StyleLayer(widths[k], widths[k], w_dim, size, mode)]
        self.layers = nn.ModuleList(layers)
        if mode == "adain":
            self.to_rgb = EqualizedConv2d(widths[-1], channels, 1, gain=1.0)
        else:
            self.to_rgbs = nn.ModuleList([_ToRGB(c, channels, w_dim) for c in widths])
        self.num_ws = 2 * len(widths)
        self.noise_shapes = [tuple(layer.noise_const.shape[2:]) for layer in self.layers]

    def mapping(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """w = f(z), truncated towards w_avg: w_avg + psi (w - w_avg) (StyleGAN App. B)."""
        w = self.mapping_network(z)
        return w if truncation == 1.0 else self.w_avg + truncation * (w - self.w_avg)

    @torch.no_grad()
    def update_w_avg(self, w: torch.Tensor, beta: float = 0.995) -> None:
        """w_avg <- beta w_avg + (1 - beta) mean(w): the centre of mass truncation pulls towards."""
        if not 0.0 <= beta <= 1.0:
            raise GanforgeError(f"w_avg decay beta must be in [0, 1] (got {beta})")
        self.w_avg.copy_(w.detach().mean(dim=0).to(self.w_avg).lerp(self.w_avg, beta))

    def styles(self, z: torch.Tensor, truncation: float = 1.0, mix_z: torch.Tensor | None = None,
               crossover: int | None = None) -> torch.Tensor:
        """ws (N x num_ws x w_dim) for z, mixed with mix_z's from `crossover` on (see draw_crossover)."""
        if (mix_z is None) != (crossover is None):
            raise GanforgeError("style mixing needs both mix_z and crossover (draw it with draw_crossover); "
                                "pass neither to use one latent")
        ws = self.mapping(z, truncation).unsqueeze(1).expand(-1, self.num_ws, -1)
        if mix_z is not None:
            ws = mix_styles(ws, self.mapping(mix_z, truncation).unsqueeze(1).expand(-1, self.num_ws, -1), crossover)
        return ws

    def _noise_list(self, noise) -> list:
        if noise is None or (isinstance(noise, str) and noise == "random"):
            return [None] * len(self.layers)
        if isinstance(noise, str) and noise == "const":
            return [layer.noise_const for layer in self.layers]
        if isinstance(noise, str) and noise == "none":
            return [torch.zeros_like(layer.noise_const) for layer in self.layers]
        if isinstance(noise, (list, tuple)) and len(noise) == len(self.layers):
            return list(noise)
        raise GanforgeError(f"noise must be None/'random', 'const', 'none' or a list of {len(self.layers)} "
                            f"tensors shaped N x 1 x H x W for H x W in {self.noise_shapes} (got {noise!r:.80})")

    def synthesis(self, ws: torch.Tensor, noise=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images from styles ws (N x num_ws x w_dim). noise: None or 'random' (fresh, from `generator`),
        'const' (fixed buffers), 'none' (zero), or one tensor per layer (shapes in `noise_shapes`)."""
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise GanforgeError(f"synthesis expects ws of shape N x {self.num_ws} x {self.w_dim} "
                                f"(got {tuple(ws.shape)}); build it with G.styles(z)")
        noises = self._noise_list(noise)
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        if self.mode == "adain":
            for i, layer in enumerate(self.layers):
                x = layer(x, ws[:, i], noises[i], generator)
            return self.to_rgb(x)
        x = self.layers[0](x, ws[:, 0], noises[0], generator)
        img = self.to_rgbs[0](x, ws[:, 1])
        for b in range(1, len(self.to_rgbs)):
            for i in (2 * b - 1, 2 * b):
                x = self.layers[i](x, ws[:, i], noises[i], generator)
            img = _up(img) + self.to_rgbs[b](x, ws[:, 2 * b + 1])  # skip generator: refine the up-sampled image
        return img

    def forward(self, z: torch.Tensor, truncation: float = 1.0, mix_z: torch.Tensor | None = None,
                crossover: int | None = None, noise=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.synthesis(self.styles(z, truncation, mix_z, crossover), noise, generator)


class _ResBlock(nn.Module):
    """StyleGAN2 residual D block (Fig. 7c): (conv3x3, conv3x3, pool) + (pool, 1x1 conv), scaled 1/sqrt(2)."""

    def __init__(self, in_width: int, out_width: int):
        super().__init__()
        self.main = nn.Sequential(EqualizedConv2d(in_width, in_width, 3), nn.LeakyReLU(0.2),
                                  EqualizedConv2d(in_width, out_width, 3), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
        self.skip = nn.Sequential(nn.AvgPool2d(2), EqualizedConv2d(in_width, out_width, 1, bias=False, gain=1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / math.sqrt(2.0)  # keep the variance of the sum


class StyleDiscriminator(nn.Module):
    """D(x) -> N logits: fromRGB, residual blocks down to 4x4, minibatch stddev head (StyleGAN2)."""

    def __init__(self, resolution: int, channels: int, width: int = 64, max_width: int = 256,
                 mbstd_group: int = 4, mbstd_features: int = 1):
        super().__init__()
        widths = stage_widths(resolution, width, max_width)
        self.resolution, self.channels = resolution, channels
        self.from_rgb = nn.Sequential(EqualizedConv2d(channels, widths[-1], 1), nn.LeakyReLU(0.2))
        self.blocks = nn.Sequential(*[_ResBlock(widths[k], widths[k - 1]) for k in range(len(widths) - 1, 0, -1)])
        self.head = output_block(widths[0], mbstd_group, mbstd_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise GanforgeError(f"StyleDiscriminator expects N x {self.channels} x {self.resolution} x "
                                f"{self.resolution} images (got {tuple(x.shape)})")
        return self.head(self.blocks(self.from_rgb(x))).squeeze(1)


def path_length_penalty(fake: torch.Tensor, ws: torch.Tensor, pl_mean, decay: float = 0.01,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 §3.2 eq. 4: lengths ||J_w^T y|| (y ~ N(0, I) / sqrt(H W), squared norm averaged over the
    num_ws styles), a <- a + decay (mean length - a); returns (mean (length - a)^2, a). fake must come
    from ws with the graph kept; the weight (2) and the lazy interval belong to the recipe."""
    if ws.dim() != 3 or fake.dim() != 4 or fake.shape[0] != ws.shape[0]:
        raise GanforgeError(f"path_length_penalty expects fake N x C x H x W made from ws N x num_ws x w_dim "
                            f"(got {tuple(fake.shape)} and {tuple(ws.shape)})")
    h, w = fake.shape[2:]
    device = generator.device if generator is not None else fake.device
    y = torch.randn(fake.shape, generator=generator, device=device, dtype=fake.dtype).to(fake.device)
    y = y / math.sqrt(h * w)  # so that the lengths do not depend on the resolution
    (grad,) = torch.autograd.grad((fake * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    pl_mean = torch.as_tensor(pl_mean, dtype=lengths.dtype, device=lengths.device)
    new_pl_mean = (pl_mean + decay * (lengths.mean().detach() - pl_mean)).detach()
    return (lengths - new_pl_mean).square().mean(), new_pl_mean
