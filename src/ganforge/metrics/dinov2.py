"""DINOv2 ViT-B/14 and ViT-L/14 feature extractors in plain PyTorch, for FD-DINOv2.

FD-DINOv2 (Stein et al. 2023, "Exposing flaws of generative model evaluation metrics and their unfair treatment
of diffusion models", arXiv:2306.04675, Sec. 4): the Frechet distance of the CLS token of DINOv2 ViT-L/14
(Oquab et al. 2023, arXiv:2304.07193) instead of Inception pool3; the same features serve KID, precision /
recall and density / coverage. The network is the standard ViT (Dosovitskiy et al. 2021, arXiv:2010.11929):
14x14 patches, a class token, learned positions for a 518x518 input (37x37 patches), pre-norm blocks with
LayerScale, LayerNorm eps 1e-6, exact GELU. Module names match Meta's released files
(`dinov2_vitb14_pretrain.pth`, `dinov2_vitl14_pretrain.pth`), which load strictly.

At 224x224 (16x16 patches) the positions are resized as DINOv2's own code does: bicubic with
scale_factor = (16 + 0.1) / 37 (the 0.1 avoids a floating-point off-by-one, facebookresearch/dino#8), no
antialias. The 224x224 input is the named protocol's (metrics/protocols.py DINOV2): dgm-eval's default under
`pytorch-fid` (PIL 8-bit bicubic), torch-fidelity's under `tf` (TF1 bilinear), dgm-eval's --clean_resize under
`clean` (PIL float bicubic), each followed by the ImageNet mean / std.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..download import file_hash, load_strict, read_state_dict, weights_file
from ..errors import GanforgeError
from . import protocols

INPUT_SIZE = 224
PATCH = 14
GRID = 37                   # the released positions: 518 / 14
ARCHS = {                   # name: (width, depth, heads)
    "vitb14": (768, 12, 12),
    "vitl14": (1024, 24, 16),
}
URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_{arch}/dinov2_{arch}_pretrain.pth"
DEFAULT_ARCH = "vitl14"     # Stein et al.'s choice for FD-DINOv2


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // self.heads) ** -0.5, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class DINOv2(nn.Module):
    """forward(images in [-1, 1], 8-bit levels) -> {"cls": N x width}: the final-norm class token of the
    input `protocol` prepares."""

    def __init__(self, arch: str = DEFAULT_ARCH, protocol: str = "pytorch-fid"):
        super().__init__()
        if arch not in ARCHS:
            raise GanforgeError(f"unknown DINOv2 architecture {arch!r}; choose from {', '.join(ARCHS)}")
        dim, depth, heads = ARCHS[arch]
        self.arch = arch
        self.preprocessing = protocols.get(protocol).name
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))   # used in pretraining only; in the released file
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.eval()

    def positions(self, h: int, w: int) -> torch.Tensor:
        if h == w == GRID:
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:].float()
        dim = grid.shape[-1]
        grid = F.interpolate(grid.reshape(1, GRID, GRID, dim).permute(0, 3, 1, 2), mode="bicubic",
                             scale_factor=((h + 0.1) / GRID, (w + 0.1) / GRID))
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(cls.dtype)
        return torch.cat([cls, grid], dim=1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an already normalised N x 3 x H x W input (H, W multiples of 14)."""
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.positions(x.shape[2] // PATCH, x.shape[3] // PATCH)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"cls": self.trunk(protocols.prepare(images, self.preprocessing, INPUT_SIZE, "imagenet"))}


def _arch_of(state: dict, path) -> str:
    width = tuple(getattr(state.get("cls_token"), "shape", ()))[-1:]
    for arch, (dim, _, _) in ARCHS.items():
        if width == (dim,):
            return arch
    raise GanforgeError(f"{path} is not a DINOv2 ViT-B/14 or ViT-L/14 weights file (class token of shape "
                        f"{tuple(getattr(state.get('cls_token'), 'shape', ()))}); pass --weights with "
                        f"dinov2_vitl14_pretrain.pth or dinov2_vitb14_pretrain.pth")


def load_dinov2(weights=None, cache_dir=None, download: bool = False, arch: str = DEFAULT_ARCH,
                url: str | None = None, protocol: str = "pytorch-fid") -> DINOv2:
    """DINOv2 with Meta's weights from `weights` (its architecture read from the file), else the cache, else
    (download=True) Meta's release of `arch`, its input prepared by `protocol`. Loaded strictly; `protocol`
    (the attribute) records the file, its SHA-256 and the input."""
    p = protocols.get(protocol)
    if arch not in ARCHS:
        raise GanforgeError(f"unknown DINOv2 architecture {arch!r}; choose from {', '.join(ARCHS)}")
    path = weights_file(weights, cache_dir, download, url or URL.format(arch=arch), what="DINOv2 weights",
                        flag="--weights PATH", expected=None, download_flag="--download")
    state = read_state_dict(path, f"dinov2_{arch}_pretrain.pth")
    model = DINOv2(_arch_of(state, path), p.name)
    load_strict(model, state, path, f"DINOv2 {model.arch}")
    sha = file_hash(path, "sha256")
    # Meta publishes no checksum for these files: canonical stays unknown (None), the hash is the identity
    model.protocol = {"extractor": "dinov2", "arch": model.arch, "weights": str(path), "weights_sha256": sha,
                      "canonical": None, "protocol": p.name,
                      "resize": f"to {INPUT_SIZE}x{INPUT_SIZE}: {protocols.DINOV2[p.name].resize}",
                      "reference": protocols.DINOV2[p.name].reference,
                      "positions": f"bicubic from {GRID}x{GRID}, scale_factor (16 + 0.1) / {GRID}, no antialias"}
    return model.eval()
