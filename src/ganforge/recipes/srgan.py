"""`srgan` - Ledig et al. 2017 (arXiv:1609.04802) with EPSR's weighting (Vasu et al. 2018, arXiv:1811.00344).

G (SRResNet) maps a low-resolution image I^LR to I^SR = G(I^LR), `scale` times larger (x4; also x2).
1. Pretraining (SRResNet): `pretrain_steps` G updates on l_MSE = ||I^HR - G(I^LR)||^2           (Eq. 4)
2. Then D and G alternate; G minimises (EPSR, Vasu Eq. 6; SRGAN Eq. 3 is lambda_mse = 0, lambda_adv = 1e-3)
   lambda_content ||phi(I^HR) - phi(G(I^LR))||^2 + lambda_mse l_MSE + lambda_adv (-log D(G(I^LR)))
   where phi is a feature network (Eq. 5: VGG19 conv5_4). Raising lambda_adv / lambda_content moves
   along the perception-distortion trade-off: sharper textures, lower PSNR.
`lambda_adv=0` trains no D (the MSE-only SRResNet when lambda_content is 0 too).

phi: `content=vgg19` loads torchvision's VGG19 weights from `vgg_weights`, the cache, or (download=true)
the internet; `content=random` (default, offline) is perceptual.py's seeded random conv features. The
run's config.json records which one in data_info.extra.feature_net (weights path and SHA-256 for VGG19):
describe_data() builds phi when ganforge.train starts the run; a resumed run rebuilds it and insists on the
same weights; a run loaded for upscaling never needs them.
The low-resolution input is the data's "cond" (photos:sr4), or, for single-domain image data such as
folder:DIR, the high-resolution batch downscaled by antialiased bicubic in the loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses as L
from ..errors import GanforgeError
from ..models.perceptual import FEATURE_NETS, build_feature_net
from ..models.srresnet import SRDiscriminator, SRResNet
from ..registry import RECIPES
from .base import Nets, Phase, RecipeConfig, StepContext, Upscaler
from .pix2pix import check_choice


@dataclass
class SRGANConfig(RecipeConfig):
    data: str = "photos:sr4"
    steps: int = 2000
    batch_size: int = 16          # the paper's
    g_lr: float = 1e-4            # the paper's Adam lr 1e-4 (then 1e-5), beta1 0.9
    d_lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    scale: int = 4                # upscaling factor: 2 or 4 (pixel-shuffle x2 stages)
    g_width: int = 64             # SRResNet channels (n64)
    g_blocks: int = 16            # residual blocks (B = 16)
    d_width: int = 64             # SRGAN D's first layer (n64)
    icnr: bool = False            # ICNR init of the pixel-shuffle convs (Aitken 2017): no checkerboard at start
    residual: bool = False        # G predicts a correction to bicubic upsampling (starts as bicubic)
    pretrain_steps: int = 1000    # pixel-loss-only G updates before the adversarial phase (SRResNet init)
    pixel_loss: str = "mse"       # the pixel loss of pretraining and of lambda_mse: mse (the paper's) or l1
    adv_g_lr: float = 0.0         # G's lr in the adversarial phase (0 = g_lr); the paper's 1e-4
    lr_schedule: str = "constant"  # cosine: every lr falls by a half cosine to 0 within each of the two phases
    loss: str = "ns"              # ns (the paper's -log D) or another losses.ADVERSARIAL name (lsgan, hinge, ragan)
    lambda_content: float = 1.0   # perceptual (feature) loss weight: EPSR's lambda_1
    lambda_mse: float = 0.0       # pixel MSE weight after pretraining: EPSR's lambda_2 (SRGAN: 0)
    lambda_adv: float = 1e-3      # adversarial weight: EPSR's lambda_3 (SRGAN: 1e-3); 0 = no D
    content: str = "random"       # feature net phi: random (offline, seeded) | vgg19 (pretrained weights)
    content_layer: str = "conv5_4"  # VGG19 layer of phi (conv5_4 = SRGAN's VGG54, conv2_2 = VGG22)
    vgg_weights: str = ""         # path of torchvision's vgg19-dcbb9e9d.pth ("" = cache, or download=true)

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        check_choice("content", self.content, FEATURE_NETS)
        check_choice("scale", self.scale, (2, 4))
        check_choice("pixel_loss", self.pixel_loss, ("mse", "l1"))
        check_choice("lr_schedule", self.lr_schedule, ("constant", "cosine"))
        for key in ("lambda_content", "lambda_mse", "lambda_adv", "pretrain_steps", "adv_g_lr"):
            if getattr(self, key) < 0:
                raise GanforgeError(f"config key {key!r} must be >= 0; got {getattr(self, key)}")
        if self.lambda_content == self.lambda_mse == self.lambda_adv == 0 and self.pretrain_steps < self.steps:
            raise GanforgeError("all three loss weights are 0: G has nothing to learn after pretraining; "
                                "set lambda_mse=1 for SRResNet (MSE), or lambda_content / lambda_adv > 0")


def bicubic_down(hr: Tensor, scale: int) -> Tensor:
    """HR in [-1, 1] -> LR by antialiased bicubic, quantised to 8 bits like a saved LR image."""
    lr = F.interpolate(hr.float(), scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return ((lr + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


def bicubic_up(lr: Tensor, scale: int) -> Tensor:
    """The baseline every SR result is compared with: bicubic interpolation, clamped to [-1, 1]."""
    return F.interpolate(lr.float(), scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


class BicubicResidual(nn.Module):
    """SR = bicubic(LR) + G(LR), with G's last conv zero-initialised so training starts from bicubic.

    Not in SRGAN: the global residual over an interpolated input is VDSR's (Kim et al. 2016,
    arXiv:1511.04587). G then learns only the missing high frequencies, which a short CPU run can do;
    from scratch, SRResNet first has to learn to reproduce the image at all."""

    def __init__(self, G: SRResNet):
        super().__init__()
        self.G, self.scale = G, G.scale
        nn.init.zeros_(G.tail[0].weight)
        nn.init.zeros_(G.tail[0].bias)

    def forward(self, lr: Tensor) -> Tensor:
        sr = bicubic_up(lr, self.scale) + self.G(lr)
        # in training the sum may leave [-1, 1] (clamping there would zero the gradient of such pixels)
        return sr if self.training else sr.clamp(-1, 1)


@RECIPES.register("srgan")
class SRGAN(Upscaler):
    name = "srgan"
    Config = SRGANConfig
    smoke = {"resolution": 8, "g_width": 4, "g_blocks": 1, "d_width": 4, "pretrain_steps": 2}
    presets = {
        # CPU-sized (docs/srgan.md): HR crops 64 px (LR 16 px), half-width G, residual over bicubic, ICNR, L1 and
        # a cosine lr within each phase; 2,000 pretraining steps (the SRResNet), then 300 adversarial ones
        "sr4": {"data": "photos:sr4", "resolution": 64, "g_width": 32, "g_blocks": 8, "d_width": 32,
                "residual": True, "icnr": True, "pixel_loss": "l1", "lr_schedule": "cosine", "g_lr": 5e-4,
                "adv_g_lr": 1e-4, "lambda_mse": 1.0, "steps": 2300, "pretrain_steps": 2000, "sample_every": 500},
        "srresnet": {"data": "photos:sr4", "resolution": 64, "g_width": 32, "g_blocks": 8, "residual": True,
                     "icnr": True, "pixel_loss": "l1", "lr_schedule": "cosine", "g_lr": 5e-4, "steps": 2000,
                     "pretrain_steps": 2000, "lambda_content": 0.0, "lambda_mse": 1.0, "lambda_adv": 0.0,
                     "sample_every": 500},
        "div2k": {"data": "folder:data/DIV2K_train_HR", "resolution": 96, "steps": 200000,
                  "pretrain_steps": 100000, "content": "vgg19", "sample_every": 5000, "checkpoint_every": 10000},
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.feature_net: nn.Module | None = None

    def describe_data(self) -> dict:
        """phi, recorded in config.json's data_info.extra.feature_net when the run starts (built here, so a
        missing VGG19 file fails before training)."""
        return {"feature_net": self._build_feature_net()} if self.uses_content() else {}

    def uses_content(self) -> bool:
        return self.cfg.lambda_content > 0 and self.cfg.pretrain_steps < self.cfg.steps

    def _build_feature_net(self) -> dict:
        c = self.cfg
        if c.content == "vgg19":
            net, desc = build_feature_net("vgg19", c.vgg_weights or None, c.download, layer=c.content_layer)
        else:
            net, desc = build_feature_net("random", channels=self.info.shape[0], seed=c.seed)
        self.feature_net = net
        return desc

    def features(self, x: Tensor) -> Tensor:
        if self.feature_net is None:   # a resumed run: rebuild, and insist on the network it recorded
            desc, recorded = self._build_feature_net(), self.info.extra.get("feature_net", {})
            if recorded and desc.get("weights_sha256") != recorded.get("weights_sha256"):
                raise GanforgeError(f"the VGG19 weights {desc.get('weights')} differ from those this run "
                                    f"started with ({recorded.get('weights')}); resume with the same file")
        self.feature_net.to(x.device)
        return self.feature_net(x)

    def lr_shape(self) -> tuple[int, ...]:
        c, (ch, h, w) = self.cfg, self.info.shape
        if "cond_shape" in self.info.extra:
            return tuple(self.info.extra["cond_shape"])
        return ch, h // c.scale, w // c.scale

    def build(self) -> nn.ModuleDict:
        c, info = self.cfg, self.info
        if info.kind != "image":
            raise GanforgeError(f"srgan works on images; {info.spec!r} holds {info.kind}")
        ch, h, w = info.shape
        lr_ch, lr_h, lr_w = self.lr_shape()
        if "cond_shape" in info.extra and (lr_ch != ch or lr_h * c.scale != h or lr_w * c.scale != w):
            raise GanforgeError(f"{info.spec!r} pairs {lr_ch}x{lr_h}x{lr_w} inputs with {ch}x{h}x{w} targets: "
                                f"not a x{c.scale} super-resolution task (set scale={h // max(lr_h, 1)} or "
                                f"use photos:sr{c.scale})")
        if h % c.scale or h // c.scale < 2:
            raise GanforgeError(f"resolution {h} (the HR crop) must be a multiple of scale={c.scale} and give "
                                f"an LR side >= 2; set resolution={8 * c.scale}")
        try:
            G = SRResNet(ch, c.g_width, c.g_blocks, c.scale, icnr=c.icnr)
            G = BicubicResidual(G) if c.residual else G
            D = SRDiscriminator(ch, c.d_width, resolution=h)
        except ValueError as e:
            raise GanforgeError(str(e)) from None
        return nn.ModuleDict({"G": G, "D": D})

    def pair(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """(LR, HR), one batch per iteration shared by the D and G phases."""
        if "batch" not in ctx.shared:
            ctx.shared["batch"] = ctx.batch
        batch = ctx.shared["batch"]
        hr = batch["real"]
        return (batch["cond"] if "cond" in batch else bicubic_down(hr, self.cfg.scale)), hr

    def phases(self, step: int) -> list[Phase]:
        c = self.cfg
        if step < c.pretrain_steps:
            return [Phase("G_mse", "G", self.mse_loss)]
        g = Phase("G", "G", self.g_loss)
        return [g] if c.lambda_adv == 0 else [Phase("D", "D", self.d_loss), g]

    def optimizer_schedule(self, step: int) -> dict[str, dict[str, float]]:
        """lr_schedule=cosine: the lr multiplier falls from 1 to 0 by a half cosine over the pretraining steps,
        then again over the adversarial steps (a fresh start for the GAN phase); adv_g_lr: G's lr there."""
        c = self.cfg
        adv = step >= c.pretrain_steps
        g = c.adv_g_lr / c.g_lr if adv and c.adv_g_lr else 1.0
        if c.lr_schedule == "constant":
            return {"G": {"lr": g}} if g != 1 else {}
        start, length = (c.pretrain_steps, c.steps - c.pretrain_steps) if adv else (0, c.pretrain_steps)
        f = 0.5 * (1 + math.cos(math.pi * (step - start) / max(1, length)))
        return {"G": {"lr": g * f}, "D": {"lr": f}}

    def pixel(self, sr: Tensor, hr: Tensor) -> Tensor:
        return (L.l1 if self.cfg.pixel_loss == "l1" else L.mse)(fake=sr, target=hr)

    def mse_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        lr, hr = self.pair(ctx)
        return {"loss": self.pixel(nets["G"](lr), hr)}

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        lr, hr = self.pair(ctx)
        with torch.no_grad():   # the D step must not build a graph into G
            sr = nets["G"](lr)
        return L.d_loss(self.cfg.loss, real_logits=nets["D"](hr), fake_logits=nets["D"](sr))

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        lr, hr = self.pair(ctx)
        sr = nets["G"](lr)
        mse = self.pixel(sr, hr)
        loss, logs = c.lambda_mse * mse, {c.pixel_loss: mse}
        if c.lambda_content:
            content = L.mse(fake=self.features(sr), target=self.features(hr).detach())
            loss, logs["content"] = loss + c.lambda_content * content, content
        if c.lambda_adv:
            adv = L.g_loss(c.loss, fake_logits=nets["D"](sr), score_real=lambda: nets["D"](hr))   # ESRGAN's RaGAN
            loss, logs["adv"] = loss + c.lambda_adv * adv, adv
        return {"loss": loss, **logs}

    # -- sampling and upscaling: held-out LR images in, SR images out --------------------------------------
    def split(self, batch: dict[str, Tensor], direction: str = "AtoB") -> tuple[Tensor, Tensor]:
        hr = batch["real"]
        return (batch["cond"] if "cond" in batch else bicubic_down(hr, self.cfg.scale)), hr

    def input_shape(self, direction: str | None = None) -> tuple[int, ...]:
        return self.lr_shape()

    def check_size(self, h: int, w: int) -> None:
        if min(h, w) < 2:
            raise GanforgeError(f"image of {w}x{h} px is too small to upscale (need at least 2x2)")
