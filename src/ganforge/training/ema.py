"""Exponential moving average of a network's weights (Karras et al. 2018 §A.1; Yazici et al. 2019,
arXiv:1806.04498): theta_ema <- d * theta_ema + (1 - d) * theta after each update of that network; weights
that no optimizer trains (requires_grad off) are copied.
Buffers (BatchNorm running statistics) are copied, not averaged: they describe the live weights' activations,
not the averaged weights', so before the EMA copy is sampled or saved `standing_statistics` re-measures them
on the EMA weights themselves (BigGAN's "standing statistics", Brock et al. 2019, arXiv:1809.11096)."""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class EMA:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float | None = None) -> None:
        """One update with `decay` (a recipe's schedule, Recipe.ema_decay), else the constructor's."""
        d = self.decay if decay is None else decay
        for p_ema, p in zip(self.net.parameters(), net.parameters()):
            if p.requires_grad:
                p_ema.lerp_(p.detach(), 1.0 - d)
            else:      # a fixed part (Recipe.fixed) is not being trained: its average is itself, even when replaced
                p_ema.copy_(p)
        for b_ema, b in zip(self.net.buffers(), net.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def standing_statistics(self, forward: Callable[[nn.Module, int], object], passes: int) -> bool:
        """Replace the EMA net's BatchNorm running statistics by their average over `passes` calls of
        forward(net, i) in training mode (momentum None: a cumulative mean, every pass weighing the same).
        False when the net has no BatchNorm. The next `update` copies the live statistics back, so training
        is unchanged; only what is sampled or saved in between reads these."""
        norms = [m for m in self.net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not norms:
            return False
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        self.net.train()
        try:
            for i in range(passes):
                forward(self.net, i)
        finally:
            self.net.eval()
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
        return True
