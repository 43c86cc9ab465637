"""The two-player update shared by every adversarial family (gan, dcgan, cgan, wgan, wgan_gp, sngan, lsgan),
with the stable-training toolbox as config keys that any of them accepts.

D phase: separate real and fake batches (never mixed, so BatchNorm statistics never blend the two - DCGAN §3).
G phase: D judges a fake again after D's update. With `reuse_fake` (the default) that fake is the one the last
D update of the step made, its graph into G kept (the PyTorch DCGAN example does the same): one G forward per
step instead of two; reuse_fake=false draws fresh noise for the G step, as Goodfellow 2014 Algorithm 1 writes
it. `d_steps` is k of that Algorithm 1 (WGAN's n_critic). Options (0 / false / "" = off):

- `loss`: any entry of losses.ADVERSARIAL (ns | minimax | wasserstein | hinge | lsgan | ragan | rpgan; losses.py
  holds the equations). A loss whose G half reads D's scores of real data (`needs_real`: ragan, rpgan) makes the G step
  score a real batch too, through the same `d_view` as the D step;
- `clip`: WGAN weight clipping to [-c, c] after each critic update (Arjovsky 2017, arXiv:1701.07875, Alg. 1);
- `gp_weight`, `gp_center`, `gp_one_sided`: lambda E[(||grad D(x_hat)|| - center)^2] on random interpolates
  (Gulrajani 2017, arXiv:1704.00028, eq. 3; center 0 = zero-centred, Thanh-Tung 2019, arXiv:1902.03984);
- `r1_gamma`, `r2_gamma`: gamma/2 E_real ||grad_x D(x)||^2 and gamma/2 E_fake ||grad_x D(x)||^2 (Mescheder 2018,
  arXiv:1801.04406, eqs. 9-10; both together with rpgan are R3GAN's loss, Huang 2024, arXiv:2501.05441, eq. 4),
  in fp32; `reg_every` = k > 1 computes them every k steps in their own D phase "D_reg" (lazy regularization,
  StyleGAN2 §3.1: the trainer multiplies that loss by k and corrects D's Adam, recipes.base.lazy_correction);
- Salimans et al. 2016 (arXiv:1606.03498): `feature_matching` (§3.1: G minimises ||E f(x) - E f(G(z))||^2,
  f = the input of D's last layer), `minibatch_discrimination` (§3.2), `historical_averaging` (§3.3, both
  players), one-sided `label_smoothing` (§3.4), `vbn` (§3.4: G's BatchNorm layers normalise with a
  reference batch of z fixed at the start);
- `mbstd`: ProGAN's minibatch standard deviation feature (Karras 2018, arXiv:1710.10196, §3);
- `instance_noise`: N(0, s_t^2) on D's inputs, real and fake, s_t annealed linearly to 0 (Sonderby 2017,
  arXiv:1610.04490);
- `diff_augment`: the same random differentiable augmentation T on real and fake, G's loss taken through it
  (Zhao 2020, arXiv:2006.10738); `augment_p` < 1 applies T to each D input with that probability (as ADA,
  Karras 2020, arXiv:2006.10676, does with its pipeline; r3gan raises it along a schedule);
- `ada`, `ada_target`, `ada_images`, `ada_interval`: that p adapted to D's overfitting (ADA: ganforge/ada.py);
- `pac`: PacGAN (Lin 2018, arXiv:1712.04086): D judges m samples of one kind concatenated along channels;
- TTUR (`g_lr` != `d_lr`, Heusel 2017, arXiv:1706.08500) and `ema_decay` are trainer-level keys.

The options that change the networks (pac, mbstd, minibatch_discrimination, vbn, historical_averaging) are
applied by AdversarialRecipe.build() to the plain G and D a family's `build_nets(info)` returns (called a
second time with the packed data description for pac). D must expose the layer called `head`
(its last linear layer) for feature matching, mbstd and minibatch discrimination.

Health signals in metrics.jsonl: D's accuracy on real and fake, the Wasserstein estimate (wasserstein loss),
each penalty's value, and each player's parameter-gradient norm (measured after the previous update of that
player: the trainer owns backward, so the norm is read in the phase's after_update and logged next time).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import ada as A
from .. import losses as L
from ..augment import diff_augment, parse_policy
from ..errors import Diverged, GanforgeError
from ..nn.layers import spectral_norm
from ..nn.options import MinibatchHead, VBNGenerator, find_head, has_batchnorm
from ..regularizers import HistoricalAverage, gradient_penalty, instance_noise, r1_penalty, r2_penalty
from .base import Nets, Phase, Recipe, RecipeConfig, StepContext, eager


@dataclass
class AdversarialConfig(RecipeConfig):
    loss: str = "ns"          # losses.ADVERSARIAL: ns (non-saturating G), minimax, wasserstein, hinge, lsgan, ragan, rpgan
    d_steps: int = 1          # D updates per G update (k in Goodfellow 2014, Algorithm 1; n_critic)
    reuse_fake: bool = True   # the G step reuses the last D update's fake (one G forward per step)
    clip: float = 0.0         # WGAN weight clipping: D's parameters clamped to [-clip, clip]; 0 = off
    gp_weight: float = 0.0    # lambda of the gradient penalty on interpolates (WGAN-GP uses 10); 0 = off
    gp_center: float = 1.0    # target gradient norm: 1 (Gulrajani) or 0 (zero-centred)
    gp_one_sided: bool = False  # penalise only norms above gp_center: max(0, ||g|| - center)^2
    r1_gamma: float = 0.0     # R1 penalty gamma (gamma/2 E_real ||grad D||^2); 0 = off
    r2_gamma: float = 0.0     # R2 penalty gamma (gamma/2 E_fake ||grad D||^2); 0 = off
    reg_every: int = 1        # R1/R2 every k steps in a lazy D phase (StyleGAN2); 1 = inside every D update
    feature_matching: bool = False  # G minimises ||E f(real) - E f(fake)||^2 instead of its adversarial loss
    minibatch_discrimination: int = 0   # kernels B of Salimans' layer before D's head; 0 = off
    mbd_dim: int = 5          # kernel size C of minibatch discrimination
    mbstd: int = 0            # group size of ProGAN's minibatch-stddev feature before D's head; 0 = off
    vbn: bool = False         # virtual batch norm in G (replaces its BatchNorm layers)
    historical_averaging: float = 0.0   # weight of ||theta - mean of past theta||^2 for both players; 0 = off
    instance_noise: float = 0.0         # initial std of Gaussian noise on D's inputs; 0 = off
    instance_noise_steps: int = 0       # steps over which that std falls linearly to 0; 0 = all of `steps`
    diff_augment: str = ""    # DiffAugment policy, e.g. "color,translation,cutout" (images only); "" = off
    augment_p: float = 1.0    # probability that each D input goes through the diff_augment policy
    pac: int = 1              # PacGAN packing m: D sees m samples at once; 1 = off
    ada: str = "auto"         # adaptive augmentation p (Karras 2020): on | off | auto (on for folders < 5,000 images)
    ada_target: float = 0.6   # the r_t = E[sign(D(x_real))] that ADA holds (Karras §3: 0.6)
    ada_images: int = 20_000  # real images for p to go 0 -> 1 (Karras: 500k in runs of 25M images; CPU runs are short)
    ada_interval: int = 4     # D updates between adjustments of p (Karras: 4 minibatches)

    def check(self) -> None:
        super().check()
        adv = L.adversarial(self.loss)
        for key in ("d_steps", "pac", "mbd_dim", "reg_every"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")
        for key in ("clip", "gp_weight", "r1_gamma", "r2_gamma", "historical_averaging", "instance_noise", "gp_center",
                    "minibatch_discrimination", "mbstd", "instance_noise_steps", "ema_decay"):
            if getattr(self, key) < 0:
                raise GanforgeError(f"config key {key!r} must be >= 0; got {getattr(self, key)}")
        if not 0 <= self.augment_p <= 1:
            raise GanforgeError(f"config key 'augment_p' must be in [0, 1]; got {self.augment_p}")
        if self.augment_p < 1 and not self.diff_augment:
            raise GanforgeError(f"augment_p={self.augment_p} is the probability of the diff_augment policy, which "
                                f"is off: set diff_augment (e.g. diff_augment=color,translation,cutout)")
        if not 0 <= self.label_smoothing < 1:
            raise GanforgeError(f"config key 'label_smoothing' must be in [0, 1); got {self.label_smoothing}")
        if self.label_smoothing and not adv.smoothing:
            smooth = ", ".join(k for k, v in L.ADVERSARIAL.items() if v.smoothing)
            raise GanforgeError(f"label_smoothing applies to the cross-entropy losses only ({smooth}); "
                                f"loss={self.loss} has no real target to smooth")
        if self.clip and self.gp_weight:
            raise GanforgeError("weight clipping (clip) and a gradient penalty (gp_weight) are two ways to make "
                                "the critic Lipschitz; use one: clip=0 for WGAN-GP, gp_weight=0 for WGAN")
        if self.batch_size % self.pac:
            raise GanforgeError(f"pac={self.pac} packs {self.pac} samples per D input, so batch_size must be a "
                                f"multiple of it; got batch_size={self.batch_size}")
        if self.mbstd and (self.batch_size // self.pac) % self.mbstd:
            raise GanforgeError(f"mbstd={self.mbstd} groups D's inputs, so batch_size / pac = "
                                f"{self.batch_size // self.pac} must be a multiple of it")
        if self.reg_every > 1 and not (self.r1_gamma or self.r2_gamma):
            raise GanforgeError(f"reg_every={self.reg_every} sets how often R1/R2 run, but r1_gamma and r2_gamma "
                                f"are 0: set one of them, or drop reg_every")
        A.check(self)
        parse_policy(self.diff_augment)


class AdversarialRecipe(Recipe):
    Config = AdversarialConfig
    conditional = False
    smooths_labels = True

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self._grad_norms: dict[str, Tensor] = {}   # per player, from its last update (logged next time)
        self.ada, self.overfit = A.for_recipe(self.cfg, info)    # ADA's p (or None) and the overfitting warning

    def state_dict(self) -> dict:
        # the norms logged with the next loss: kept, so a resumed run's first log row is the uninterrupted one's
        return {"grad_norms": dict(self._grad_norms), **({"ada": self.ada.state_dict()} if self.ada else {})}

    def load_state_dict(self, state: dict) -> None:
        self._grad_norms = dict(state.get("grad_norms", {}))
        if self.ada:
            self.ada.load_state_dict(state["ada"])

    def describe_data(self) -> dict:   # ada=auto's decision, in config.json: a resumed run makes the same one
        return {"ada": self.ada is not None} if self.info.kind == "image" else {}

    def watch(self, row: dict) -> str | None:
        return self.overfit(row) if self.overfit else None
    augment_policy = property(lambda self: self.cfg.diff_augment or (A.DEFAULT_POLICY if self.ada else ""))

    # -- what families override ----------------------------------------------------------------------------
    def build_nets(self, info) -> Nets:
        """The family's plain G and D for data described by `info` (the options are applied by build())."""
        raise NotImplementedError(f"{type(self).__name__}.build_nets")

    def discriminate(self, nets: Nets, x: Tensor, labels: Tensor | None) -> Tensor:
        return nets["D"](x)

    def g_labels(self, ctx: StepContext) -> Tensor | None:
        return None

    # -- network options -----------------------------------------------------------------------------------
    def build(self) -> Nets:
        """build_nets() with the network options applied: pac builds D again for the packed input (m times the
        channels or features), then mbstd, minibatch discrimination, vbn and historical averaging."""
        nets = self.build_nets(self.info)
        if self.cfg.pac > 1:
            packed = (self.info.shape[0] * self.cfg.pac, *self.info.shape[1:])
            nets["D"] = self.build_nets(dataclasses.replace(self.info, shape=packed))["D"]
        return self.apply_options(nets)

    def apply_options(self, nets: Nets) -> Nets:
        c = self.cfg
        if c.pac > 1 and self.conditional:
            raise GanforgeError(f"pac packs unconditional samples; {self.name} is conditional. Use pac=1")
        if c.diff_augment and self.info.kind != "image":
            raise GanforgeError(f"diff_augment works on images; {self.info.spec!r} holds {self.info.kind}. "
                                f"Use instance_noise for points")
        if c.gp_weight and has_batchnorm(nets["D"]):
            raise GanforgeError("a gradient penalty needs a critic without BatchNorm (it mixes the examples, so "
                                "the per-sample gradient is wrong): set d_norm=layer (or none)")
        if c.minibatch_discrimination or c.mbstd:
            parent, attr, head = find_head(nets["D"])
            if not isinstance(head, nn.Linear):
                raise GanforgeError(f"D's head is a {type(head).__name__}, not a linear layer; mbstd and "
                                    f"minibatch_discrimination need a linear head")
            new = MinibatchHead(head.in_features, c.minibatch_discrimination, c.mbd_dim, c.mbstd)
            if parametrize.is_parametrized(head):   # keep a spectrally normalised head normalised
                spectral_norm(new.linear)
            setattr(parent, attr, new)
        if c.feature_matching:
            find_head(nets["D"])   # fail now, not at the first G step
        if c.vbn:
            n = c.batch_size
            z_ref = self.noise(n, "cpu")
            labels_ref = torch.arange(n) % self.info.num_classes if self.conditional else None
            nets["G"] = VBNGenerator(nets["G"], z_ref, labels_ref)
        if c.historical_averaging:
            for p in ("G", "D"):
                nets[f"{p}_hist"] = HistoricalAverage(nets[p].parameters())
        return nets

    # -- schedule ------------------------------------------------------------------------------------------
    def phases(self, step: int) -> list[Phase]:
        c = self.cfg
        out = [Phase("D", "D", self.d_loss, repeat=c.d_steps, after_update=self._after_update("D", step))]
        if self.lazy_penalties:
            out.append(Phase("D_reg", "D", self.reg_loss, every=c.reg_every, after_update=self._after_update("D", step)))
        return out + [Phase("G", "G", self.g_loss, after_update=self._after_update("G", step))]

    @property
    def lazy_penalties(self) -> bool:
        """R1/R2 in their own phase every reg_every steps, rather than inside every D update."""
        return self.cfg.reg_every > 1 and bool(self.cfg.r1_gamma or self.cfg.r2_gamma)

    def gammas(self, step: int) -> tuple[float, float]:
        """(R1 gamma, R2 gamma) at `step`: the config's; r3gan decays them (a pure function of the step). A
        penalty whose config gamma is 0 is never computed."""
        return self.cfg.r1_gamma, self.cfg.r2_gamma

    def _after_update(self, player: str, step: int):
        """What follows each update of `player`: its gradient norm (logged with its next loss: the trainer owns
        backward), a stop before non-finite weights could be checkpointed, WGAN's clipping, the historical
        average."""
        def after(nets: Nets) -> None:
            self._check_update(nets[player], player, step)
            if player == "D" and self.cfg.clip:     # WGAN: keep the critic in a compact set (Lipschitz)
                with torch.no_grad():
                    for p in nets["D"].parameters():
                        p.clamp_(-self.cfg.clip, self.cfg.clip)
            if self.cfg.historical_averaging:
                nets[f"{player}_hist"].update(list(nets[player].parameters()))
        return after

    @torch.no_grad()
    def _check_update(self, net: nn.Module, player: str, step: int) -> None:
        params = list(net.parameters())
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        self._grad_norms[player] = torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))
        # an infinite gradient can leave finite losses but NaN weights: stop before the trainer checkpoints
        # them, so the last checkpoint on disk stays a good one
        weight_norm = torch.linalg.vector_norm(torch.stack([p.float().norm() for p in params]))
        if not torch.isfinite(self._grad_norms[player] + weight_norm):
            raise Diverged(step, f"{player}'s gradients or weights")

    # -- what D sees ---------------------------------------------------------------------------------------
    def noise_std(self, step: int) -> float:
        c = self.cfg
        horizon = c.instance_noise_steps or c.steps
        return c.instance_noise * max(0.0, 1.0 - step / horizon)

    def augment_probability(self, step: int) -> float:
        """p of augment_p at `step` (r3gan schedules it; a pure function of the step)."""
        return self.cfg.augment_p

    def d_view(self, x: Tensor, step: int) -> Tensor:
        """The transform every D input goes through, real and fake alike: T, noise, then packing."""
        c, policy = self.cfg, self.augment_policy
        p = (self.ada.p if self.ada else self.augment_probability(step)) if policy else 0.0
        if p >= 1:
            x = diff_augment(x, policy)
        elif p > 0:   # each sample augmented with probability p (ADA's per-image rule)
            keep = torch.rand(x.shape[0], device=x.device) >= p
            x = torch.where(keep.view(-1, *[1] * (x.ndim - 1)), x, diff_augment(x, policy))
        if c.instance_noise:
            x = instance_noise(x, self.noise_std(step))
        if c.pac > 1:   # sample i of pack j is row i * (N / m) + j: m independent draws of one kind
            n = x.shape[0] // c.pac
            x = torch.cat(x.split(n), dim=1)
        return x

    def _health(self, logs: dict[str, Tensor], player: str) -> dict[str, Tensor]:
        if player in self._grad_norms:
            logs["grad_norm"] = self._grad_norms[player]
        return logs

    def reuses_fake(self, ctx: StepContext, n: int) -> bool:
        """Whether this D update makes the G step's fake: only the step's last one, only for unconditional
        families (cgan's G step draws uniform labels, its D step uses the batch's), and only at G's batch size."""
        c = self.cfg
        return c.reuse_fake and ctx.repeat == c.d_steps - 1 and not self.conditional and n == ctx.batch_size

    # -- losses --------------------------------------------------------------------------------------------
    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        real, labels = ctx.real, (ctx.labels if self.conditional else None)
        z = self.noise(real.shape[0], ctx.device)
        if self.reuses_fake(ctx, real.shape[0]):
            # the last D update of the step: keep G's graph for the G step, give D a detached copy
            fake = self.generate(nets["G"], z, labels)
            ctx.shared["fake"] = fake
            fake = fake.detach()
        else:
            with torch.no_grad():   # the D step must not build a graph into G
                fake = self.generate(nets["G"], z, labels)
        real_in, fake_in = self.d_view(real, ctx.step), self.d_view(fake, ctx.step)
        inline = not self.lazy_penalties      # the penalties reuse this update's D passes
        real_in, real_logits = self._score(nets, real_in, labels, inline and c.r1_gamma > 0, ctx)
        fake_in, fake_logits = self._score(nets, fake_in, labels, inline and c.r2_gamma > 0, ctx)
        adv = L.ADVERSARIAL[c.loss]
        loss = adv.d(real_logits=real_logits, fake_logits=fake_logits, smoothing=c.label_smoothing)
        acc_real, acc_fake = adv.accuracy(real_logits=real_logits, fake_logits=fake_logits)
        logs = {"acc_real": acc_real, "acc_fake": acc_fake,   # health: D's accuracy, then the loss's own (V, W)
                **adv.signals(real_logits=real_logits, fake_logits=fake_logits)}
        if self.ada:   # r_t from this update's reals (their sign: acc_real), p adjusted every ada_interval updates
            logs["augment_p"] = acc_real.new_tensor(self.ada.observe(acc_real))
        if c.gp_weight:
            gp = gradient_penalty(lambda x: self.discriminate(eager(nets), x, labels), real_in, fake_in,
                                  center=c.gp_center, one_sided=c.gp_one_sided)
            loss = loss + c.gp_weight * gp
            logs["gp"] = gp.detach()
        if inline:
            loss = loss + self._penalties(real_in, real_logits, fake_in, fake_logits, ctx.step, logs)
        if c.historical_averaging:
            ha = nets["D_hist"](list(nets["D"].parameters()))
            loss = loss + c.historical_averaging * ha
            logs["hist"] = ha.detach()
        logs["loss"] = loss
        return self._health(logs, "D")

    def _score(self, nets: Nets, x: Tensor, labels, penalised: bool, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """(x, D(x)); for a penalised side x becomes an fp32 leaf and D runs without autocast and uncompiled, for
        the double backward (see regularizers.gradient_penalty) of the gradient wrt the input D actually sees."""
        if not penalised:
            return x, self.discriminate(nets, x, labels)
        x = x.detach().float().requires_grad_(True)
        with torch.autocast(ctx.device.type, enabled=False):
            return x, self.discriminate(eager(nets), x, labels)

    def _penalties(self, real_in, real_logits, fake_in, fake_logits, step: int, logs: dict) -> Tensor | float:
        """gamma_1/2 R1 + gamma_2/2 R2 at `step` (Mescheder 2018 eqs. 9-10), each logged."""
        (g1, g2), c, total = self.gammas(step), self.cfg, 0.0
        if c.r1_gamma:
            r1 = r1_penalty(real_logits, real_in)
            total, logs["r1"] = total + 0.5 * g1 * r1, r1.detach()
        if c.r2_gamma:
            r2 = r2_penalty(fake_logits, fake_in)
            total, logs["r2"] = total + 0.5 * g2 * r2, r2.detach()
        return total

    def reg_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        """The lazy phase D_reg: R1 on a real batch and R2 on a fresh fake one, through D's view."""
        c = self.cfg
        labels = ctx.labels if self.conditional else None
        with torch.no_grad():
            fake = self.generate(nets["G"], self.noise(ctx.real.shape[0], ctx.device), labels)
        real_in, real_logits = self._score(nets, self.d_view(ctx.real, ctx.step), labels, c.r1_gamma > 0, ctx)
        fake_in, fake_logits = self._score(nets, self.d_view(fake, ctx.step), labels, c.r2_gamma > 0, ctx)
        logs: dict[str, Tensor] = {}
        logs["loss"] = self._penalties(real_in, real_logits, fake_in, fake_logits, ctx.step, logs)
        return logs

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        adv = L.ADVERSARIAL[c.loss]
        labels = self.g_labels(ctx)
        fake = ctx.shared.pop("fake", None)
        if fake is None:
            fake = self.generate(nets["G"], self.noise(ctx.batch_size, ctx.device), labels)
        real_logits = None
        if c.feature_matching or adv.needs_real:
            # D on a real batch, through the D step's view, without a graph (only G updates here): feature
            # matching's f(real), and the real logits of a loss whose G half compares with them (ragan, rpgan)
            real_labels = ctx.labels if self.conditional else None
            features = capture_features(nets["D"]) if c.feature_matching else contextlib.nullcontext([])
            with torch.no_grad(), features as f_real:
                real_logits = self.discriminate(nets, self.d_view(ctx.real, ctx.step), real_labels)
        if c.feature_matching:
            # Salimans §3.1: match the mean of D's features (the input of its head) on real and fake data
            with capture_features(nets["D"]) as f_fake:
                fake_logits = self.discriminate(nets, self.d_view(fake, ctx.step), labels)
            fm = (f_real[0].float().flatten(1).mean(0) - f_fake[0].float().flatten(1).mean(0)).pow(2).sum()
            logs = {"loss": fm, "fm": fm.detach(),
                    "adv": adv.g(fake_logits=fake_logits.detach(), real_logits=real_logits)}
        else:
            fake_logits = self.discriminate(nets, self.d_view(fake, ctx.step), labels)
            logs = {"loss": adv.g(fake_logits=fake_logits, real_logits=real_logits)}
        if c.historical_averaging:
            ha = nets["G_hist"](list(nets["G"].parameters()))
            logs["loss"] = logs["loss"] + c.historical_averaging * ha
            logs["hist"] = ha.detach()
        return self._health(logs, "G")


@contextlib.contextmanager
def capture_features(D: nn.Module):
    """Collect the input of D's head (its features) during the calls made inside the block."""
    _, _, head = find_head(D)
    store: list[Tensor] = []
    handle = head.register_forward_pre_hook(lambda module, args: store.append(args[0]))
    try:
        yield store
    finally:
        handle.remove()
