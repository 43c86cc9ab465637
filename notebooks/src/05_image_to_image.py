# %% [markdown]
# # 5. Image-to-image: pix2pix, CycleGAN, SRGAN
#
# A generator need not start from noise: conditioned on an *image*, the adversarial loss becomes a learned
# measure of "looks like a real output", which a per-pixel loss alone cannot give (per-pixel losses average the
# plausible answers into a blur).
#
# - **pix2pix** (Isola et al. 2017, [arXiv:1611.07004](https://arxiv.org/abs/1611.07004)): paired data, a U-Net
#   $G$, a PatchGAN $D$, cGAN + L1.
# - **CycleGAN** (Zhu et al. 2017, [arXiv:1703.10593](https://arxiv.org/abs/1703.10593)): unpaired data, two
#   generators tied by cycle consistency.
# - **SRGAN** (Ledig et al. 2017, [arXiv:1609.04802](https://arxiv.org/abs/1609.04802)): super-resolution with a
#   perceptual loss.
#
# The data ships with scikit-image and scikit-learn (seven photographs: five to train on, `chelsea` and `flower`
# held out) and ganforge's shape renderer. About three minutes on a laptop CPU; everything it writes goes under
# `runs/05/`.

# %%
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display
from PIL import Image as PILImage

import ganforge
from ganforge.data import resolve
from ganforge.data.photos import load_photos, photo_short_side, scale_photo
from ganforge.data.shapeswap import shapeswap_test_set
from ganforge.metrics.image_quality import l1, psnr
from ganforge.metrics.shapeswap import shapeswap_scores
from ganforge.recipes.srgan import bicubic_down, bicubic_up
from ganforge.viz import save_grid

RUNS = Path("runs/05")
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)


def show(path, width=None):
    display(Image(filename=str(path), width=width))


def rgb(x):
    """Grey images as 3 channels, for grids that mix both."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def save_png(x, path):
    """One image in [-1, 1] (C x H x W) as an 8-bit PNG."""
    a = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    PILImage.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path)
    return Path(path)


def read_png(path):
    a = torch.from_numpy(np.array(PILImage.open(path).convert("RGB"))).permute(2, 0, 1)
    return a[None].float() / 127.5 - 1

# %% [markdown]
# ## pix2pix: colourisation
#
# $G$ sees the grey image $x$ (and dropout noise) and outputs a colour image; $D$ sees the pair $(x, y)$ and judges
# whether $y$ is the real colour version of $x$. The objective of the paper's **eq. 4**:
#
# $$G^* = \arg\min_G \max_D \; \mathcal{L}_\text{cGAN}(G, D) + \lambda\, \mathbb{E}_{x, y}\big[\|y - G(x)\|_1\big], \qquad \lambda = 100$$
#
# $G$ is a **U-Net** (skip connections carry the input's structure to the output); $D$ is a **PatchGAN**: a
# convolutional net whose output is a grid of real/fake decisions, one per patch (§3.2.2), so the adversarial
# term judges texture and colour locally while L1 keeps the low frequencies right. `pix2pix --preset gray2color`
# trains on 32x32 crops of the five training photos (800 steps, about a minute on a laptop). As in the paper's
# colourisation (L -> ab), G predicts only the two colour channels: the output's brightness is the grey input
# itself (`keep_luma`, YCbCr), so G cannot blur or shift the structure it was given.

# %%
p2p_summary = ganforge.train("pix2pix", preset="gray2color", out=RUNS / "pix2pix")
P = ganforge.load(RUNS / "pix2pix")
show(Path(p2p_summary["run_dir"]) / "plots" / "translations-step-000800.png", width=260)

# %% [markdown]
# The training grid above holds training crops (input | output | target). Scored on the held-out photos' 32x32
# tiles, against the grey input itself as the baseline: L1 (in $[-1, 1]$ units) and PSNR (dB). Colourisation is
# ambiguous (a grey shirt may have been red or blue): a plausible colour that is not the true one costs more
# than no colour at all, so PSNR moves little and, with five training photos, depends on the seed as much as
# on the method. Look at the hues: G learns from those photos that bright is warm and dark is blue, so the
# cat comes out orange and the flower's teal leaves navy. docs/pix2pix.md has the paper's ablation (L1 alone,
# cGAN alone, both) with a hue error, over seeds.

# %%
test, _ = resolve("photos:gray2color", split="test", resolution=32)
batch = test.batch(torch.arange(len(test)))
grey, truth = rgb(batch["cond"]), batch["real"]
torch.manual_seed(0)                    # pix2pix keeps its dropout on at test time (the paper's noise)
with torch.no_grad():
    colour = P.G(batch["cond"]).clamp(-1, 1)
for name, x in (("grey input", grey), ("pix2pix", colour)):
    print(f"{name:11s} L1 {l1(x, truth).item():.3f}  PSNR {psnr(x, truth).item():.2f} dB")
assert l1(colour, truth) < l1(grey, truth) + 0.02

pick = torch.arange(0, len(test), max(1, len(test) // 8))[:8]
grid = torch.stack([grey[pick], colour[pick], truth[pick]], 1).flatten(0, 1)
show(save_grid(grid, RUNS / "pix2pix-held-out.png", nrow=3, upscale=3), width=260)

# %% [markdown]
# The generator is fully convolutional, so `ganforge.translate` applies it to a whole image of any size (here
# a held-out photo, made grey and written as a PNG, as a user would bring one):

# %%
name, photo = load_photos("test")[0]
hr = scale_photo(photo, photo_short_side(32))[None].float() / 127.5 - 1       # the training photos' scale
grey_file = save_png(hr[0].mean(0, keepdim=True), RUNS / "chelsea-grey.png")
coloured = ganforge.translate(RUNS / "pix2pix", grey_file, RUNS / "chelsea-colour.png")[0]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
for ax, (title, img) in zip(axes, (("grey input", plt.imread(grey_file)), ("pix2pix", plt.imread(coloured)),
                                   ("the real photo", ((hr[0].permute(1, 2, 0) + 1) / 2).numpy()))):
    ax.imshow(img, cmap="gray")
    ax.set_title(title)
    ax.axis("off")
plt.show()

# %% [markdown]
# Five training photos teach a warm palette: fur, skin, wood and brick come out orange-brown, and the
# background gets the same colours whatever it was.
#
# ## CycleGAN: unpaired translation
#
# Without pairs, nothing says *which* square a circle should become. CycleGAN learns two generators,
# $G: A \to B$ and $F: B \to A$, each with its own discriminator (LSGAN loss), and ties them with the
# **cycle-consistency** loss of **eq. 2**: translating there and back must return the input,
#
# $$\mathcal{L}_\text{cyc}(G, F) = \mathbb{E}_{x \sim A}\big[\|F(G(x)) - x\|_1\big] + \mathbb{E}_{y \sim B}\big[\|G(F(y)) - y\|_1\big],$$
#
# so the translation must keep what makes the input identifiable (colour, position, size) and change only what
# the target domain's $D$ rejects. Full objective (eq. 3): $\mathcal{L}_\text{GAN}(G, D_B) + \mathcal{L}_\text{GAN}(F, D_A) + \lambda\,\mathcal{L}_\text{cyc}$,
# $\lambda = 10$.
#
# The task `shapeswap:circles2squares` has a known answer: circles and squares are drawn from the same
# attributes, so a translation can be scored against the true square (`metrics.shapeswap`): `kind_acc` (the
# corners that differ between a circle and its square are filled like the square's), `color_acc` and
# `background_acc` (kept), `swap_acc` (all at once). We train 600 steps of the preset's 1,000.

# %%
ganforge.train("cyclegan", preset="circles2squares", out=RUNS / "cyclegan", steps=600)
Gab = ganforge.load(RUNS / "cyclegan")                    # its first generator, A -> B
a, b, attrs = shapeswap_test_set("circles2squares", 32, n=256)
circles, squares = a.float() / 127.5 - 1, b.float() / 127.5 - 1
with torch.no_grad():
    swapped = Gab.G(circles).clamp(-1, 1)
results = {"identity map (the baseline)": shapeswap_scores(circles, attrs),
           "CycleGAN G: A -> B, 600 steps": shapeswap_scores(swapped, attrs)}
print(f"{'':31s} kind_acc  color_acc  background_acc  swap_acc")
for name, s in results.items():
    print(f"{name:31s} {s['kind_acc']:8.3f}  {s['color_acc']:9.3f}  {s['background_acc']:14.3f}  {s['swap_acc']:8.3f}")
grid = torch.stack([circles[:8], swapped[:8], squares[:8]], 1).flatten(0, 1)
show(save_grid(grid, RUNS / "cyclegan-held-out.png", nrow=3, upscale=3), width=260)
s = results["CycleGAN G: A -> B, 600 steps"]
assert s["background_acc"] > 0.9 and s["color_acc"] > 0.6

# %% [markdown]
# Honest reading: in this budget the cycle loss has done its part (colour, background and position are kept:
# compare the columns input | G(input) | true square), but the shapes are blurred blobs, not yet squares; the
# preset's 1,000 steps are not enough either (docs/cyclegan.md: kind_acc 0.09). The adversarial term is what must
# push the kind over, and it is the slow part.
#
# ## SRGAN: x4 super-resolution
#
# $G$ (SRResNet: residual blocks, pixel-shuffle upsampling) maps a low-resolution image to one 4x larger. Trained
# on MSE alone it is sharp where MSE allows and blurry where many high-resolution images fit the same low-res
# one. SRGAN's **perceptual loss** (eq. 3) adds an adversarial term: $l^{SR} = l^{SR}_\text{content} + 10^{-3}\, l^{SR}_\text{Gen}$,
# with the content loss in the feature space of a pretrained network (VGG in the paper; ganforge ships no VGG,
# so its offline default is a fixed random feature net, as docs/srgan.md explains).
#
# The zoo's `srgan-x4` (trained with `ganforge train srgan --preset sr4`), applied with `ganforge.upscale` to a
# held-out photo that we first shrink 4x (antialiased bicubic, like the training pairs), against bicubic
# upsampling of the same small image:

# %%
hr = scale_photo(photo, photo_short_side(64))[None].float() / 127.5 - 1
hr = hr[..., : hr.shape[-2] // 4 * 4, : hr.shape[-1] // 4 * 4]
small = save_png(bicubic_down(hr, 4)[0], RUNS / "chelsea-small.png")
big = ganforge.upscale("zoo:srgan-x4", small, RUNS / "chelsea-x4.png")[0]
sr, bicubic = read_png(big), bicubic_up(read_png(small), 4)
crop = (..., slice(4, -4), slice(4, -4))                    # border pixels excluded, as SR papers do
for name, x in (("bicubic", bicubic), ("zoo:srgan-x4", sr)):
    print(f"{name:13s} PSNR {psnr(x[crop], hr[crop]).item():.2f} dB  L1 {l1(x[crop], hr[crop]).item():.4f}")

h, w = hr.shape[-2:]
window = (..., slice(h // 2 - 48, h // 2 + 48), slice(w // 2 - 64, w // 2 + 64))
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, (title, x) in zip(axes, (("bicubic", bicubic), ("zoo:srgan-x4", sr), ("the real photo", hr))):
    ax.imshow(((x[window][0].permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy(), interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
plt.show()
assert sr.shape == hr.shape and psnr(sr[crop], hr[crop]) > 20

# %% [markdown]
# SRGAN trades PSNR for texture: the adversarial term rewards plausible high frequencies, which PSNR (a pixel
# MSE) penalises wherever they are not exactly the true ones: the *perception-distortion trade-off* (Blau &
# Michaeli 2018). docs/srgan.md measures SRResNet (MSE only) above bicubic by 0.7 dB and SRGAN at about
# bicubic's PSNR with sharper edges.
#
# ## Try it yourself
#
# - The paper's ablation: `gan_weight=0` (L1 alone: washed-out colours) and `lambda_l1=0` (cGAN alone) on
#   `gray2color`; or `preset="edges2photo"` (Sobel edges to photos).
# - CycleGAN for longer (`steps=3000`), or with your own `--data unpaired:DIR` (trainA/trainB folders).
# - From a terminal: `ganforge translate RUN photo.png --out colour.png`, `ganforge upscale zoo:srgan-x4 small.png
#   --out big.png`.
