# %% [markdown]
# # 4. Progressive growing and StyleGAN
#
# - **ProGAN**, Karras et al. 2018, *Progressive Growing of GANs* ([arXiv:1710.10196](https://arxiv.org/abs/1710.10196)):
#   start both networks at 4x4 and add layers as training goes, fading each new block in.
# - **StyleGAN**, Karras et al. 2019, *A Style-Based Generator Architecture* ([arXiv:1812.04948](https://arxiv.org/abs/1812.04948)):
#   map $z$ to an intermediate latent $w$ and let $w$ set the *style* of every layer; style mixing and the
#   truncation trick follow from it.
#
# The data is scikit-learn's handwritten digits, upsampled to 32x32 (`--preset digits` of both recipes).
# Growing is shown on a short run trained here; the finished models come from the zoo (`zoo:progan-digits`,
# `zoo:stylegan-digits`: `ganforge train progan --preset digits steps=1500 images_per_phase=6000` and
# `ganforge train stylegan --preset digits steps=1500`, several minutes each on a CPU). About two minutes on a laptop CPU; everything it
# writes goes under `runs/04/`.

# %%
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

import ganforge

RUNS = Path("runs/04")
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)


def show(path, width=None):
    display(Image(filename=str(path), width=width))


def zoo_or_short(name, recipe, **short):
    """The zoo's model when this ganforge ships it; otherwise a short stand-in trained here (its pictures are
    then rough, but every call below works the same on it)."""
    try:
        return ganforge.load(f"zoo:{name}"), f"zoo:{name}"
    except ganforge.GanforgeError:
        out = RUNS / f"{name}-short"
        print(f"zoo:{name} is not in this ganforge: training a short stand-in in {out}")
        ganforge.train(recipe, out=out, progress=False, **short)
        return ganforge.load(out), out

# %% [markdown]
# ## Growing (Karras et al. 2018, §2)
#
# $G$ and $D$ are mirror images. Training starts at 4x4, where the large-scale structure is learned fast and
# stably; then each network gets a new block at twice the resolution. The new block is **faded in** (Fig. 2):
# during a fade-in phase, with $\alpha$ rising from 0 to 1,
#
# $$\text{out} = (1 - \alpha)\,\text{up}\big(\text{toRGB}_{k-1}(h_{k-1})\big) + \alpha\,\text{toRGB}_k\big(\text{block}_k(h_{k-1})\big)$$
#
# and a stabilise phase at $\alpha = 1$ follows. $D$ blends its inputs the same way, and the real images are
# brought to the current resolution by the same blend. The other ingredients (§3-4): **minibatch standard
# deviation** (a feature that lets $D$ see the batch's diversity), **equalized learning rate** (weights stored as
# $\mathcal{N}(0, 1)$ and scaled by He's constant at run time), **PixelNorm** in $G$; the loss is WGAN-GP with a drift
# term.
#
# A tiny run at 16x16 with 1,600 images per phase (the preset: 16,000; the paper: 800,000), so that all five
# phases (4 | fade to 8 | 8 | fade to 16 | 16) fit in 300 steps. The schedule is a pure function of the step;
# the samples of each phase's last step show the resolution growing.

# %%
grow = ganforge.train("progan", preset="digits", out=RUNS / "progan-grow", resolution=16, images_per_phase=1600,
                      steps=300, sample_every=50)
phases = {50: "4 px", 100: "fading in 8 px", 150: "8 px", 200: "fading in 16 px", 250: "16 px", 300: "16 px"}
fig, axes = plt.subplots(1, 6, figsize=(18, 3.4))
for ax, (step, what) in zip(axes, phases.items()):
    ax.imshow(plt.imread(RUNS / "progan-grow" / "samples" / f"step-{step:06d}.png"), cmap="gray")
    ax.set_title(f"step {step}: {what}")
    ax.axis("off")
plt.show()

# %% [markdown]
# The generator carries its stage and $\alpha$ with its weights, so a checkpoint taken mid-growth samples at the
# resolution it had reached. The finished model (4 -> 32 px):

# %%
PG, progan_source = zoo_or_short("progan-digits", "progan", preset="digits", resolution=16,
                                 images_per_phase=3200, steps=600, sample_every=600)
show(PG.save(PG.sample(64, seed=0), RUNS / "progan.png"), width=360)

# %% [markdown]
# ## StyleGAN (Karras et al. 2019)
#
# The generator of Fig. 1(b): a **mapping network** $f$ (8 dense layers) takes $z$ to $w \in \mathcal{W}$; the
# **synthesis network** starts from a learned constant 4x4 input, and every layer gets a style
# $y = (y_s, y_b) = A(w)$ through **AdaIN** (eq. 1),
#
# $$\mathrm{AdaIN}(x_i, y) = y_{s,i}\, \frac{x_i - \mu(x_i)}{\sigma(x_i)} + y_{b,i},$$
#
# plus per-pixel noise for the stochastic detail (§3.2). Because $w$ need not follow a fixed distribution, $f$
# can *unwarp* the factors of variation (§4: $\mathcal{W}$ is more disentangled than $\mathcal{Z}$).

# %%
SG, stylegan_source = zoo_or_short("stylegan-digits", "stylegan", preset="digits", resolution=16,
                                   batch_size=16, steps=300, sample_every=300)
print(SG.G.mapping_network)
print(f"{SG.G.num_ws} styles (2 per resolution), w_dim {SG.G.w_avg.shape[-1]}")
show(SG.save(SG.sample(32, seed=0), RUNS / "stylegan.png"), width=360)

# %% [markdown]
# ### Style mixing (§3.1)
#
# Draw two latents, $w_A$ and $w_B$, and feed $w_A$ to some layers and $w_B$ to the others. Styles at the
# **coarse** resolutions (4-8 px) carry the layout (which digit, its pose and size); the **middle** and **fine**
# ones carry stroke thickness and texture. In the figure, sources A are down the left, sources B along the top, and each cell
# is A with one band of styles taken from B (one block of rows per band). Training mixes two latents in 90% of
# the minibatches (`style_mixing_prob`), so that neighbouring styles do not rely on each other.

# %%
show(ganforge.style_mix(stylegan_source, RUNS / "style-mix.png", rows=3, cols=4), width=700)

# %% [markdown]
# ### The truncation trick (Appendix B)
#
# Sampling $w$ from the tails gives the worst images. Pulling every $w$ towards the average,
# $w' = \bar w + \psi\,(w - \bar w)$, trades variety for quality: $\psi = 1$ is no truncation, $\psi = 0$ draws
# $\bar w$'s image for every $z$ (ganforge tracks $\bar w$ during training). The same 8 latents at four $\psi$:

# %%
rows = torch.cat([SG.sample(8, seed=1, truncation=psi) for psi in (1.0, 0.7, 0.4, 0.0)])
show(SG.save(rows, RUNS / "truncation.png", nrow=8), width=420)
mean_image = SG.sample(8, seed=1, truncation=0.0)
spread = {psi: SG.sample(64, seed=2, truncation=psi).std(0).mean().item() for psi in (1.0, 0.7, 0.4, 0.0)}
print("pixel std across 64 samples:", ", ".join(f"psi {p}: {s:.3f}" for p, s in spread.items()))
assert (mean_image - mean_image[:1]).abs().max() < 1e-4     # psi = 0: one image for every z
assert spread[1.0] > spread[0.4] > spread[0.0]

# %% [markdown]
# ### Walking in $\mathcal{W}$
#
# `ganforge.interpolate(..., space="w")` walks linearly between mapped latents (in $\mathcal{Z}$ it uses spherical
# interpolation). The paper's *perceptual path length* (§4.1) measures how smoothly such walks change the
# image: shorter in $\mathcal{W}$ than in $\mathcal{Z}$ for the style-based generator.

# %%
show(ganforge.interpolate(stylegan_source, RUNS / "walk-w.png", space="w", n=3, points=3, frames=6, scale=2),
     width=800)
show(ganforge.interpolate(stylegan_source, RUNS / "walk-w.gif", space="w", n=8, truncation=0.7))

# %% [markdown]
# ## Try it yourself
#
# - `ganforge.train("stylegan", preset="stylegan2-shapes", out=...)`: StyleGAN2's modulated convolutions
#   (weight demodulation, eq. 1-3 of arXiv:1912.04958) and path length regularisation.
# - `ganforge.style_mix(RUN, "mix.png", bands="coarse", truncation=1.0)`: one band, no truncation.
# - The coloured shapes (`preset="shapes"`): harder; docs/stylegan.md and docs/progan.md say how far a CPU
#   budget gets.
# - From a terminal: `ganforge train progan --preset digits`, then `ganforge sample RUN`; `ganforge style-mix
#   zoo:stylegan-digits --out mix.png`.
