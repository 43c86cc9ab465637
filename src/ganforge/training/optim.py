"""The players' optimizers as the trainer runs them: the recipe's choice (Recipe.optimizer), switched to the fused
kernel, corrected for lazy phases, and scaled by the lr schedule at every step."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GanforgeError
from ..recipes.base import Recipe, lazy_correction, lr_factor
from .hardware import fused_optimizer


def build(recipe: Recipe, nets: nn.ModuleDict, lazy: dict[str, int]) -> dict[str, torch.optim.Optimizer]:
    """`lazy`: lazy_phases(recipe), whose players' optimizers get StyleGAN2's correction."""
    opts = {p: fused_optimizer(recipe.optimizer(p, [q for n in names for q in nets[n].parameters()]))
            for p, names in recipe.players.items()}
    for player, every in lazy.items():
        lazy_correction(opts[player], every)
    for opt in opts.values():      # the schedules scale each group's own lr (the lazy-corrected one)
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return opts


def lazy_phases(recipe: Recipe) -> dict[str, int]:
    """player -> `every` of its lazy phase, as declared at step 0; a player has at most one (its optimizer is
    corrected for that interval), and train_step refuses a lazy phase that was not declared here."""
    lazy: dict[str, int] = {}
    for ph in recipe.phases(0):
        if ph.every > 1:
            if ph.player in lazy:
                raise GanforgeError(f"{recipe.name}: player {ph.player} has two lazy phases (every={lazy[ph.player]} "
                                    f"and every={ph.every}); one lazy interval per player")
            lazy[ph.player] = ph.every
    return lazy


def schedule(opts: dict[str, torch.optim.Optimizer], step: int, steps: int, decay_start: float, recipe: Recipe,
             lazy: dict[str, int]) -> None:
    """Every group's lr = its initial lr x lr_factor(step) (lr_decay_start) x the recipe's own multiplier
    (Recipe.optimizer_schedule), and Adam's beta2 the recipe's value ** c, c = k / (k + 1) for a player with a
    lazy phase every k steps (lazy_correction): pure functions of the step."""
    own = recipe.optimizer_schedule(step)
    if decay_start >= 1 and not own:
        return
    f = lr_factor(step, steps, decay_start) if decay_start < 1 else 1.0
    for player, opt in opts.items():
        mine = own.get(player, {})
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * f * mine.get("lr", 1.0)
            if "beta2" in mine:
                c = lazy[player] / (lazy[player] + 1) if player in lazy else 1.0
                group["betas"] = (group["betas"][0], mine["beta2"] ** c)
