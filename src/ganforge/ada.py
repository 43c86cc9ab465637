"""Adaptive discriminator augmentation and the overfitting watch (small data).

ADA (Karras et al. 2020, arXiv:2006.06676, §3): D's inputs, real and fake alike, go through an augmentation
with probability p, and p follows D's overfitting heuristic

    r_t = E[sign(D_train)]                                       (§3, eq. 1's r_t; over the last `interval` D updates)
    p <- clip(p + sign(r_t - target) * N * interval / ada_images, 0, 1)

with N the batch size, so p can go from 0 to 1 in `ada_images` real images (their 500k) and r_t is kept near
the target (their 0.6). Here the augmentation is the recipe's DiffAugment policy (Zhao 2020,
arXiv:2006.10738: translation, cutout and colour are differentiable and non-leaking when p stays below ~0.8).
sign(D) counts a real image as "right" when its score is on the real side of the loss's own threshold
(losses.ADVERSARIAL[loss].accuracy: 0 on the logits, 1/2 for LSGAN's 0/1 targets), so r_t = 2 acc_real - 1.
The Wasserstein critic's sign means nothing (its output is defined up to a constant): ADA refuses it.

`ada=auto` (the default) is on for a folder of fewer than AUTO_BELOW images: the folder spec records its
image count in DataInfo.extra["images"], and resolve() reads it; the result is kept in config.json's data_info
(`ada`), so a resumed or loaded run decides the same way.
"""
from __future__ import annotations

import sys

import torch
from torch import Tensor

from .errors import GanforgeError

AUTO_BELOW = 5000          # "a few thousand images": ADA is on by default for folder data smaller than this
DEFAULT_POLICY = "color,translation,cutout"   # DiffAugment's choice for small data (Zhao 2020, Table 5)


def check(cfg) -> None:
    """The ADA keys of an AdversarialConfig."""
    if cfg.ada not in ("auto", "on", "off"):
        raise GanforgeError(f"config key 'ada' must be auto, on or off; got {cfg.ada!r}")
    if not 0 < cfg.ada_target < 1:
        raise GanforgeError(f"config key 'ada_target' must be in (0, 1); got {cfg.ada_target}")
    for key in ("ada_images", "ada_interval"):
        if getattr(cfg, key) < 1:
            raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(cfg, key)}")


def resolve(cfg, info) -> bool:
    """Whether this run adapts p: ada=on / off as said; auto from the data (an earlier decision first)."""
    if cfg.ada == "off":
        return False
    if cfg.ada == "auto":
        if "ada" in info.extra:                # this run's decision, read back from config.json
            return bool(info.extra["ada"])
        folder = info.kind == "image" and info.spec.startswith("folder:")
        small = folder and 0 < info.extra.get("images", 0) < AUTO_BELOW
        return small and cfg.loss != "wasserstein" and cfg.augment_p == 1
    if info.kind != "image":
        raise GanforgeError(f"ada=on augments images; {info.spec!r} holds {info.kind}. Use instance_noise for points")
    if cfg.loss == "wasserstein":
        raise GanforgeError("ada reads the sign of D's score on real images; a Wasserstein critic's score has no "
                            "sign that means real (it is defined up to a constant): use ada=off, or loss=hinge")
    if cfg.augment_p != 1:
        raise GanforgeError(f"augment_p={cfg.augment_p} fixes the augmentation probability and ada=on adapts it; "
                            f"use one: ada=off to keep augment_p, or drop augment_p")
    return True


def for_recipe(cfg, info) -> tuple[AdaptiveP | None, OverfitWatch | None]:
    """An adversarial recipe's ADA state (None when off) and its overfitting watch (image data only)."""
    ada = AdaptiveP(cfg.ada_target, cfg.ada_images, cfg.ada_interval, cfg.batch_size) if resolve(cfg, info) else None
    fixes = "Fixes: more training images, ada=on (adaptive augmentation), or diff_augment=" + DEFAULT_POLICY
    if cfg.diff_augment:   # a fixed policy is on already: the remedies it leaves
        fixes = (f"diff_augment={cfg.diff_augment} is on already: add training images, make D smaller (d_width), "
                 f"or give D less lr than G (d_lr)")
    epoch = info.extra.get("images", 0) / (cfg.batch_size * cfg.d_steps)     # G steps per pass of D over the reals
    return ada, (OverfitWatch(fixes=fixes, epoch_steps=epoch) if info.kind == "image" else None)


class AdaptiveP:
    """p and the running sum of sign(D(x_real)) since its last adjustment; state_dict() for exact resume."""

    def __init__(self, target: float, images: int, interval: int, batch: int):
        self.target, self.interval = target, interval
        self.step_size = batch * interval / images     # so that p can go 0 -> 1 in `images` real images
        self.p = 0.0                                    # Karras §3: p starts at 0
        self.signs: Tensor | None = None                # sum of E[sign] over the updates since the last adjustment
        self.count = 0

    def observe(self, acc_real: Tensor) -> float:
        """One D update's accuracy on reals; every `interval` updates, p moves by one step toward the target.
        Returns p."""
        s = 2 * acc_real.detach().double() - 1          # E[sign(D(x_real) - threshold)]
        self.signs = s if self.signs is None else self.signs + s
        self.count += 1
        if self.count == self.interval:
            r_t = self._mean_over_ranks(self.signs / self.count).item()
            # sign(r_t - target): 0 when exactly at the target (Karras' sign function), as torch.sign does
            move = (r_t > self.target) - (r_t < self.target)
            self.p = min(1.0, max(0.0, self.p + move * self.step_size))
            self.signs, self.count = None, 0
        return self.p

    @staticmethod
    def _mean_over_ranks(t: Tensor) -> Tensor:
        # under torchrun every process must hold the same p: r_t is averaged over the ranks
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = t.clone()
            torch.distributed.all_reduce(t)
            t /= torch.distributed.get_world_size()
        return t

    def state_dict(self) -> dict[str, Tensor]:
        signs = self.signs.cpu() if self.signs is not None else torch.zeros((), dtype=torch.float64)
        return {"p": torch.tensor(self.p, dtype=torch.float64), "signs": signs,
                "count": torch.tensor(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.count = float(state["p"]), int(state["count"])
        self.signs = state["signs"].double() if self.count else None


class OverfitWatch:
    """One warning when D tells real from fake for `rows` consecutive log rows: D/acc_real and D/acc_fake both
    above `threshold` (Karras 2020 §2: an overfitting D is confident on the training reals and on the fakes,
    while its validation accuracy falls; the log has no validation reals, so a long stretch is the sign).
    `epoch_steps` (G steps per pass of D over the training images; 0 = unknown) tells the two causes apart:
    before D has seen every training image twice it cannot have memorised them, and the warning says that G
    is not keeping up instead."""

    def __init__(self, threshold: float = 0.9, rows: int = 5, fixes: str = "", epoch_steps: float = 0.0):
        self.threshold, self.rows, self.fixes, self.epoch_steps = threshold, rows, fixes, epoch_steps
        self.run, self.fired = 0, False

    def __call__(self, row: dict) -> str | None:
        real, fake = row.get("D/acc_real"), row.get("D/acc_fake")
        if self.fired or real is None or fake is None:
            return None
        self.run = self.run + 1 if min(real, fake) > self.threshold else 0
        if self.run < self.rows:
            return None
        self.fired = True
        head = (f"ganforge: warning: D has told real from fake (accuracy > {self.threshold:.2f} on both) for "
                f"{self.rows} log rows up to step {row.get('step')}")
        epochs = row.get("step", 0) / self.epoch_steps if self.epoch_steps else None
        if epochs is not None and epochs < 2:
            return (f"{head}, after {epochs:.1f} passes over the training images: too few to memorise them, so "
                    "D is not overfitting; G's samples are easy to tell apart and G is not keeping up. Fixes: "
                    "give D less lr than G (d_lr), a smaller D (d_width), or instance_noise")
        p, fixes = row.get("D/augment_p"), self.fixes
        if p is not None:    # ADA is on: say where its p is, and what is left to do
            fixes = (f"ADA's p is {p:.2f}: " + ("it augments every input already; add training images, or make D "
                     "smaller (d_width)" if p > 0.99 else "lower ada_images so that p rises sooner, or ada_target"))
        seen = f" ({epochs:.0f} passes over them)" if epochs is not None else ""
        return f"{head}: it is overfitting the training images{seen}, and G learns little from it. {fixes}"


def warn(note: str | None) -> str | None:
    if note:
        print(note, file=sys.stderr, flush=True)
    return note
