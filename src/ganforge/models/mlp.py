"""Multilayer perceptrons for the original GAN (Goodfellow et al. 2014, arXiv:1406.2661) on points, table rows
and flattened images. D exposes `features` (the last hidden layer) and `head` so conditional projection,
feature matching and minibatch discrimination can reach the features."""
from __future__ import annotations

import math

from torch import Tensor, nn


def _stack(sizes: list[int], act: type[nn.Module], **kw) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act(**kw)]
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: int = 256, depth: int = 3,
                 tanh: bool = False):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.body = _stack([z_dim] + [hidden] * depth, nn.ReLU)
        self.out = nn.Linear(hidden, math.prod(out_shape))
        self.tanh = tanh          # images live in [-1, 1]; points and standardized columns are unbounded

    def forward(self, z: Tensor) -> Tensor:
        x = self.out(self.body(z))
        x = x.tanh() if self.tanh else x
        return x.view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], hidden: int = 256, depth: int = 3, extra_in: int = 0):
        super().__init__()
        self.body = _stack([math.prod(in_shape) + extra_in] + [hidden] * depth, nn.LeakyReLU, negative_slope=0.2)
        self.feature_dim = hidden
        self.head = nn.Linear(hidden, 1)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
