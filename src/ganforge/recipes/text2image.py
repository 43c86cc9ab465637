"""`text2image` - generative adversarial text to image synthesis (Reed et al. 2016, arXiv:1605.05396).

A text encoder phi maps a caption t to phi(t); G(z, phi(t)) concatenates z with a projection of phi(t)
(FC + LeakyReLU) and runs the DCGAN generator; D runs the DCGAN discriminator to 4x4, concatenates the
projected phi(t) replicated spatially, and scores the pair with a 1x1 conv + linear head.

- GAN-CLS (matching-aware D, Reed Alg. 1): with s_r = D(x, t), s_w = D(x, t_wrong), s_f = D(G(z, t), t),
  D maximizes L_D = log s_r + (log(1 - s_w) + log(1 - s_f)) / 2   (`matching=true`, `matching_aware_d`).
  Without it D sees only (real, right text) vs (fake, right text): a plain conditional GAN.
  t_wrong is the caption of another image of the batch (`wrong_text=shuffled`, the paper's), or a near miss
  of the right caption, wrong about exactly one attribute (`wrong_text=near_miss`, data that provide them:
  `shapes:captions`): a hard negative that D can only reject by checking that attribute.
- `loss` (default ns, the paper's) takes any losses.ADVERSARIAL entry: GAN-CLS then gives that loss's D
  the pair (real, right text) as its real side and both (real, wrong text) and (fake, right text), half each,
  as its fake side - exactly the equation above for ns. A G half that reads real scores (ragan) compares
  G's images, on plain and on interpolated text, with D's scores of the batch's (real, right text) pairs.
- What D sees can go through DiffAugment (Zhao et al. 2020, `diff_augment`: the same kind of random
  differentiable transform on every real and fake image, G's loss taken through it) and instance noise
  (`instance_noise`, std annealed linearly to 0 over the run; Sonderby et al. 2017), as in the unconditional
  image recipes (recipes/adversarial.py): the pair a caption scores is then (T(x), t).
- GAN-INT (Reed §4.3): G also gets interpolated embeddings beta phi(t1) + (1 - beta) phi(t2) (beta = 0.5),
  adding E log(1 - D(G(z, t_int), t_int)) to its objective (`interpolate=true`). D is never trained on them.

- Mode seeking (`mode_seeking` = lambda, Mao et al. 2019, arXiv:1903.05628, eq. 3): a conditional G can
  ignore z and still fool D, one image per caption. G also draws a second image of the same captions from
  fresh noise and minimises lambda / (d_I / d_z + 1e-5), d_I = mean |G(z1, t) - G(z2, t)|, d_z = mean |z1 - z2|.
- Text pretraining (`text_pretrain` steps, Reed §3: the paper's encoder was trained first, on a joint
  embedding of its data set's images and captions, then fixed): the first steps train only E, a text encoder
  and an image CNN, with a symmetric contrastive loss (each image's caption is its positive among the batch's
  captions, and the converse; cosine / TEMPERATURE, CLIP's form of Reed's structured joint embedding); at step
  `text_pretrain` G and D take E's text encoder as their own and keep it fixed, so the condition carries every
  attribute from the first adversarial step instead of being learnt through D's feedback alone.

Otherwise the encoder is built in and trained end to end (token embedding + GRU, or a bag of embeddings), one
inside G and one inside D, so a saved generator carries its own encoder; interpolation happens in each
net's own embedding space. Captions come from `shapes:captions` (data/specs_text.py), shuffled wrong texts are
the batch's captions shifted by one, and `generate(G, z, labels)` takes token ids (see `encode_text`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GanforgeError
from .. import losses as L
from ..augment import check_d_input, d_input
from ..models.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init
from ..registry import RECIPES
from .base import Nets, Phase, RecipeConfig, StepContext, TextConditional
from .dcgan import image_nets_check

SAMPLE_CAPTIONS = (
    "a large red circle in the center on a blue background",
    "a small yellow square at the top left on a black background",
    "a large green triangle in the bottom right on a white background",
    "a small white circle at the bottom left on a purple background",
    "a large orange square in the center on a green background",
    "a small blue triangle at the top right on a yellow background",
    "a large black circle at the top left on an orange background",
    "a small purple square at the bottom right on a red background",
)


@dataclass
class Text2ImageConfig(RecipeConfig):
    data: str = "shapes:captions"
    resolution: int = 32
    text_encoder: str = "gru"     # gru (word order matters: "red on blue" != "blue on red") | bag (mean of words)
    embed_dim: int = 64           # token embedding size
    text_dim: int = 128           # sentence embedding phi(t)
    proj_dim: int = 64            # phi(t) projected before concatenation (Reed: 128)
    matching: bool = True         # GAN-CLS: D also learns real image + wrong text = fake
    interpolate: bool = True      # GAN-INT: G also trained on interpolated text embeddings
    beta: float = 0.5             # interpolation weight: beta phi(t1) + (1 - beta) phi(t2)
    wrong_text: str = "shuffled"  # GAN-CLS's t_wrong: shuffled (another image's caption, Reed's) | near_miss
    g_width: int = 64
    d_width: int = 64
    steps: int = 3000
    loss: str = "ns"              # the paper's log loss, or another losses.ADVERSARIAL name
    diff_augment: str = ""        # DiffAugment policy on D's images, e.g. "color,translation,cutout"; "" = off
    instance_noise: float = 0.0   # initial std of Gaussian noise on D's images, falling linearly to 0; 0 = off
    mode_seeking: float = 0.0     # weight of MSGAN's diversity term in G's loss; 0 = off
    text_pretrain: int = 0        # steps of joint text-image embedding before the game; G and D then fix it; 0 = off
    text_pretrain_lr: float = 1e-3  # Adam lr of that pretraining

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        check_d_input(self)
        if self.text_encoder not in ("gru", "bag"):
            raise GanforgeError(f"config key 'text_encoder' must be gru or bag; got {self.text_encoder!r}")
        if self.wrong_text not in ("shuffled", "near_miss"):
            raise GanforgeError(f"config key 'wrong_text' must be shuffled or near_miss; got {self.wrong_text!r}")
        if not 0 <= self.text_pretrain < self.steps:
            raise GanforgeError(f"config key 'text_pretrain' must be in [0, steps) = [0, {self.steps}); got "
                                f"{self.text_pretrain}: the game needs steps after the pretraining")
        if self.mode_seeking < 0:
            raise GanforgeError(f"config key 'mode_seeking' must be >= 0; got {self.mode_seeking}")
        if self.text_pretrain_lr <= 0:
            raise GanforgeError(f"config key 'text_pretrain_lr' must be > 0; got {self.text_pretrain_lr}")
        if not 0.0 <= self.beta <= 1.0:
            raise GanforgeError(f"config key 'beta' must be in [0, 1]; got {self.beta}")


def matching_aware_d(*, real_logits: Tensor, wrong_logits: Tensor, fake_logits: Tensor, loss: str = "ns") -> Tensor:
    """GAN-CLS's D loss: `loss`'s D half with (real, wrong text) and (fake, right text) as the fake side, half
    each: the mean of the two D halves. For ns, -(log s_r + (log(1 - s_w) + log(1 - s_f)) / 2), s = sigmoid(logit);
    for a pairing loss (rpgan) each real is paired with its wrong-text and with its fake counterpart."""
    d = L.ADVERSARIAL[loss].d
    return 0.5 * (d(real_logits=real_logits, fake_logits=wrong_logits) + d(real_logits=real_logits, fake_logits=fake_logits))


def mode_seeking_term(x1: Tensor, x2: Tensor, z1: Tensor, z2: Tensor, eps: float = 1e-5) -> Tensor:
    """MSGAN's term (Mao et al. 2019, eq. 3) for G to minimise: 1 / (mean |x1 - x2| / mean |z1 - z2| + eps)."""
    return 1.0 / ((x1.float() - x2.float()).abs().mean() / (z1.float() - z2.float()).abs().mean() + eps)


class TextEncoder(nn.Module):
    """Token ids (N x L, 0 = padding at the end) -> phi(t), N x text_dim."""

    def __init__(self, vocab_size: int, embed_dim: int, text_dim: int, kind: str = "gru"):
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        if kind == "gru":
            self.rnn = nn.GRU(embed_dim, text_dim, batch_first=True)
        else:
            self.out = nn.Linear(embed_dim, text_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        mask = (tokens != 0)
        length = mask.sum(1).clamp(min=1)
        e = self.embed(tokens)
        if self.kind == "gru":
            # padding trails the words, so the state after the last word is unaffected by it
            h, _ = self.rnn(e)
            return h[torch.arange(tokens.shape[0], device=tokens.device), length - 1]
        return self.out((e * mask.unsqueeze(2)).sum(1) / length.unsqueeze(1))


TEMPERATURE = 0.1     # of the contrastive pretraining's cosine similarities


def _image_body(res: int, ch: int, width: int) -> tuple[nn.Sequential, int]:
    """The DCGAN discriminator's body (image -> C x 4 x 4) and its C."""
    body = DCGANDiscriminator(res, ch, width).body
    return body, [m for m in body if isinstance(m, nn.Conv2d)][-1].out_channels


class JointEmbedding(nn.Module):
    """E: a text encoder and an image CNN (the DCGAN discriminator's body + a linear map) into one space."""

    def __init__(self, encoder: TextEncoder, text_dim: int, res: int, ch: int, width: int):
        super().__init__()
        self.text = encoder
        body, c = _image_body(res, ch, width)
        self.image = nn.Sequential(body, nn.Flatten(), nn.Linear(c * 16, text_dim))

    def loss(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """The symmetric contrastive loss, mean of image->text and text->image cross-entropies over the batch's
        cosine similarities / TEMPERATURE, and the share of images whose own caption scores highest."""
        t = F.normalize(self.text(tokens).float(), dim=1)
        v = F.normalize(self.image(images).float(), dim=1)
        logits = v @ t.T / TEMPERATURE
        target = torch.arange(len(logits), device=logits.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return loss, (logits.argmax(1) == target).float().mean()


def _projection(text_dim: int, proj_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(text_dim, proj_dim), nn.LeakyReLU(0.2))


class TextGenerator(nn.Module):
    def __init__(self, encoder: TextEncoder, z_dim: int, text_dim: int, proj_dim: int, res: int, ch: int, width: int):
        super().__init__()
        self.text, self.proj = encoder, _projection(text_dim, proj_dim)
        self.backbone = DCGANGenerator(z_dim + proj_dim, res, ch, width)

    def from_embedding(self, z: Tensor, phi: Tensor) -> Tensor:
        return self.backbone(torch.cat([z, self.proj(phi)], dim=1))

    def forward(self, z: Tensor, tokens: Tensor) -> Tensor:
        return self.from_embedding(z, self.text(tokens))


class TextDiscriminator(nn.Module):
    def __init__(self, encoder: TextEncoder, text_dim: int, proj_dim: int, res: int, ch: int, width: int):
        super().__init__()
        self.text, self.proj = encoder, _projection(text_dim, proj_dim)
        self.body, c = _image_body(res, ch, width)          # image -> C x 4 x 4
        self.joint = nn.Sequential(nn.Conv2d(c + proj_dim, c, 1), nn.LeakyReLU(0.2, True), nn.Flatten())
        self.head = nn.Linear(c * 16, 1)
        self.joint.apply(dcgan_init), self.head.apply(dcgan_init)

    def score(self, features: Tensor, phi: Tensor) -> Tensor:
        """Logit of "this image matches this text" from body features and a text embedding."""
        t = self.proj(phi)[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.head(self.joint(torch.cat([features, t], dim=1))).squeeze(1)

    def forward(self, x: Tensor, tokens: Tensor) -> Tensor:
        return self.score(self.body(x), self.text(tokens))


@RECIPES.register("text2image")
class Text2Image(TextConditional):
    name = "text2image"
    Config = Text2ImageConfig
    smoke = {"data": "shapes:captions:32", "resolution": 8, "g_width": 8, "d_width": 8, "embed_dim": 8,
             "text_dim": 8, "proj_dim": 8, "z_dim": 8}
    presets = {
        "shapes": {},
        # CPU-sized: 16x16, narrow nets (the benchmark's setting)
        "shapes16": {"resolution": 16, "g_width": 32, "d_width": 32, "steps": 2000},
    }

    def build(self) -> nn.ModuleDict:
        image_nets_check(self)
        c, info = self.cfg, self.info
        if "vocab" not in info.extra:
            raise GanforgeError(f"text2image needs captioned images; {info.spec!r} has no captions. "
                                f"Use data=shapes:captions")
        if c.wrong_text == "near_miss" and not info.extra.get("near_miss"):
            raise GanforgeError(f"wrong_text=near_miss needs data that provide near-miss captions; {info.spec!r} "
                                f"does not. Use data=shapes:captions, or wrong_text=shuffled")
        ch, res, _ = info.shape
        v = len(info.extra["vocab"])
        nets = nn.ModuleDict({
            "G": TextGenerator(TextEncoder(v, c.embed_dim, c.text_dim, c.text_encoder), c.z_dim, c.text_dim,
                               c.proj_dim, res, ch, c.g_width),
            "D": TextDiscriminator(TextEncoder(v, c.embed_dim, c.text_dim, c.text_encoder), c.text_dim,
                                   c.proj_dim, res, ch, c.d_width),
        })
        if c.text_pretrain:
            nets["E"] = JointEmbedding(TextEncoder(v, c.embed_dim, c.text_dim, c.text_encoder), c.text_dim,
                                       res, ch, c.d_width)
        return nets

    def fixed(self, nets: Nets) -> list[nn.Module]:
        # G's and D's encoders take E's at step text_pretrain and keep it
        return [nets["G"].text, nets["D"].text] if self.cfg.text_pretrain else []

    @property
    def players(self) -> dict[str, tuple[str, ...]]:
        return {"G": ("G",), "D": ("D",), **({"E": ("E",)} if self.cfg.text_pretrain else {})}

    def lr(self, player: str) -> float:
        return self.cfg.text_pretrain_lr if player == "E" else super().lr(player)

    # -- text in, images out ------------------------------------------------------------------------------
    def encode_text(self, texts: list[str]) -> Tensor:
        """Captions -> token ids for `generate` (unknown words map to <unk>)."""
        from ..data.specs_text import encode_captions
        return encode_captions(list(texts), self.info.extra["vocab"], self.info.extra["max_len"])

    def sample_labels(self, n: int, labels=None) -> Tensor:
        """Token ids for n samples. None: the fixed SAMPLE_CAPTIONS, one block of rows each (sample grids);
        a caption (str) for all n, or n captions; or token ids N x max_len as they are."""
        if labels is None:
            k = min(len(SAMPLE_CAPTIONS), n)
            labels = [SAMPLE_CAPTIONS[i] for i in ((torch.arange(n) * k) // n).tolist()]
        if isinstance(labels, str):
            labels = [labels] * n
        if isinstance(labels, (list, tuple)) and all(isinstance(t, str) for t in labels):
            if len(labels) == 1:
                labels = list(labels) * n
            if len(labels) != n:
                raise GanforgeError(f"give one caption, or one per sample ({n}); got {len(labels)}")
            return self.encode_text(labels)
        labels = torch.as_tensor(labels)
        if labels.dim() != 2 or labels.dtype != torch.long or labels.shape[0] != n:
            raise GanforgeError("text2image generates from captions: pass text (sample --text \"a red circle\") "
                                "or token ids N x max_len from Text2Image.encode_text")
        return labels

    def generate(self, G, z, labels=None):
        return G(z, self.sample_labels(z.shape[0], labels).to(z.device))

    # -- the game -----------------------------------------------------------------------------------------
    def d_view(self, x: Tensor, step: int) -> Tensor:
        """An image as D sees it: the DiffAugment policy, then instance noise at its annealed std."""
        c = self.cfg
        return d_input(x, c.diff_augment, c.instance_noise, step, c.steps)

    def phases(self, step: int) -> list[Phase]:
        if step < self.cfg.text_pretrain:
            return [Phase("E", "E", self.embed_loss)]
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss)]

    def embed_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        loss, acc = nets["E"].loss(ctx.real, ctx.batch["text"])
        return {"loss": loss, "acc": acc}

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        if self.cfg.text_pretrain and ctx.step == self.cfg.text_pretrain:   # the game's first step
            for net in (G, D):
                net.text.load_state_dict(nets["E"].text.state_dict())
        real, text = ctx.real, ctx.batch["text"]
        with torch.no_grad():   # the D step must not build a graph into G
            fake = G(self.noise(real.shape[0], ctx.device), text)
        phi = D.text(text)
        # separate passes: BatchNorm never mixes real and fake
        real_f, fake_f = D.body(self.d_view(real, ctx.step)), D.body(self.d_view(fake, ctx.step))
        real_logits, fake_logits = D.score(real_f, phi), D.score(fake_f, phi)
        adv = L.ADVERSARIAL[self.cfg.loss]
        acc_real, acc_fake = adv.accuracy(real_logits=real_logits, fake_logits=fake_logits)
        logs = {"acc_real": acc_real, "acc_fake": acc_fake}
        if self.cfg.matching:
            # t_wrong: a caption of another image of the batch, or a near miss of the image's own caption
            wrong = phi.roll(1, dims=0) if self.cfg.wrong_text == "shuffled" else D.text(ctx.batch["wrong"])
            wrong_logits = D.score(real_f, wrong)
            logs["loss"] = matching_aware_d(real_logits=real_logits, wrong_logits=wrong_logits,
                                            fake_logits=fake_logits, loss=self.cfg.loss)
            logs["acc_wrong"] = adv.accuracy(real_logits=real_logits, fake_logits=wrong_logits)[1]
        else:
            logs["loss"] = adv.d(real_logits=real_logits, fake_logits=fake_logits)
        return logs

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        text = ctx.batch["text"]
        n = text.shape[0]
        phi_g, phi_d = G.text(text), D.text(text)
        z = self.noise(n, ctx.device)
        fake = G.from_embedding(z, phi_g)
        view = lambda x: D.body(self.d_view(x, ctx.step))   # noqa: E731
        loss = L.g_loss(self.cfg.loss, fake_logits=D.score(view(fake), phi_d),             # real: right text
                        score_real=lambda: D.score(view(ctx.real), phi_d))
        logs = {"cond": loss.detach()}
        if self.cfg.mode_seeking:
            z2 = self.noise(n, ctx.device)
            ms = mode_seeking_term(fake, G.from_embedding(z2, phi_g), z, z2)
            loss, logs["mode_seeking"] = loss + self.cfg.mode_seeking * ms, ms.detach()
        if self.cfg.interpolate:
            b = self.cfg.beta
            mix_g = b * phi_g + (1 - b) * phi_g.roll(1, dims=0)
            mix_d = b * phi_d + (1 - b) * phi_d.roll(1, dims=0)
            fake_int = G.from_embedding(self.noise(n, ctx.device), mix_g)
            interp = L.g_loss(self.cfg.loss, fake_logits=D.score(view(fake_int), mix_d),
                              score_real=lambda: D.score(view(ctx.real), phi_d))
            loss, logs["interp"] = loss + interp, interp.detach()
        logs["loss"] = loss
        return logs

    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        # the captions behind the sample grid's row blocks, so the grid can be read
        path = Path(plots_dir) / "sample_captions.txt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{i}: {t}\n" for i, t in enumerate(SAMPLE_CAPTIONS)))
