"""The network side of the stable-training toolbox (recipes/adversarial.py applies these to a family's nets):
D's `head` found by name, a head with minibatch features (Salimans et al. 2016 §3.2, ProGAN §3), and a G
whose BatchNorm layers become virtual batch norm over a fixed reference batch (Salimans et al. 2016 §3.4)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import GanforgeError
from .layers import MinibatchDiscrimination, VirtualBatchNorm
from .style import MinibatchStdDev


def find_head(D: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """(parent, attribute, module) of D's last linear layer, the submodule named `head`."""
    for name, module in D.named_modules():
        if name.split(".")[-1] == "head":
            parent = D.get_submodule(name.rpartition(".")[0]) if "." in name else D
            return parent, name.split(".")[-1], module
    raise GanforgeError(f"{type(D).__name__} has no `head` layer (its last linear layer, applied to its "
                        f"features); feature_matching, mbstd and minibatch_discrimination need one")


class MinibatchHead(nn.Module):
    """D's new last layer: features -> [features, minibatch features] -> logit (Salimans §3.2, ProGAN §3)."""

    def __init__(self, features: int, mbd_kernels: int, mbd_dim: int, mbstd: int):
        super().__init__()
        self.mbd = MinibatchDiscrimination(features, mbd_kernels, mbd_dim) if mbd_kernels else None
        self.mbstd = MinibatchStdDev(group_size=mbstd) if mbstd else None
        self.linear = nn.Linear(features + mbd_kernels + (1 if mbstd else 0), 1)

    def forward(self, f: Tensor) -> Tensor:
        f = f.flatten(1)
        if self.mbd is not None:
            f = self.mbd(f)
        if self.mbstd is not None:   # std over the group of each feature, averaged: one extra feature
            f = self.mbstd(f[:, :, None, None]).flatten(1)
        return self.linear(f)


class RefVBN(VirtualBatchNorm):
    """VirtualBatchNorm that, while `collecting`, takes its statistics from the batch it sees (the reference)."""
    collecting = False

    def forward(self, x: Tensor) -> Tensor:
        return self.set_reference(x) if self.collecting else super().forward(x)


class VBNGenerator(nn.Module):
    """G with its BatchNorm layers turned into VBN; each call first runs the fixed reference z through G
    (no graph: the statistics are stored detached) so every layer's reference statistics follow G's weights."""

    def __init__(self, G: nn.Module, z_ref: Tensor, labels_ref: Tensor | None):
        super().__init__()
        swapped = 0
        for name, module in list(G.named_modules()):
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                vbn = RefVBN(module.num_features, module.eps)
                if module.affine:
                    vbn.weight.data.copy_(module.weight.data)
                    vbn.bias.data.copy_(module.bias.data)
                parent, _, attr = name.rpartition(".")
                setattr(G.get_submodule(parent) if parent else G, attr, vbn)
                swapped += 1
        if not swapped:
            raise GanforgeError(f"vbn replaces G's BatchNorm layers, and this {type(G).__name__} has none; "
                                f"use vbn with a convolutional G (dcgan, arch=dcgan or resnet)")
        self.G = G
        self.register_buffer("z_ref", z_ref)
        self.register_buffer("labels_ref", labels_ref if labels_ref is not None else torch.zeros(0, dtype=torch.long))

    def _collect(self, on: bool) -> None:
        for m in self.G.modules():
            if isinstance(m, RefVBN):
                m.collecting = on

    def forward(self, z: Tensor, *rest) -> Tensor:
        with torch.no_grad():
            self._collect(True)
            try:
                self.G(self.z_ref, *((self.labels_ref,) if rest else ()))
            finally:
                self._collect(False)
        return self.G(z, *rest)


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
