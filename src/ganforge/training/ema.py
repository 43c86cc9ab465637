"""Exponential moving average of a network's weights (Karras et al. 2018 §A.1; Yazici et al. 2019,
arXiv:1806.04498): theta_ema <- d * theta_ema + (1 - d) * theta after each update of that network.
Buffers (BatchNorm running statistics) are copied, not averaged."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float | None = None) -> None:
        """One update with `decay` (a recipe's schedule, Recipe.ema_decay), else the constructor's."""
        d = self.decay if decay is None else decay
        for p_ema, p in zip(self.net.parameters(), net.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.net.buffers(), net.buffers()):
            b_ema.copy_(b)
