# %% [markdown]
# # 2. DCGAN and conditional GANs
#
# - Radford, Metz & Chintala, *Unsupervised Representation Learning with Deep Convolutional GANs*, 2015
#   ([arXiv:1511.06434](https://arxiv.org/abs/1511.06434)): the convolutional architecture that made GANs train
#   on images.
# - Mirza & Osindero, *Conditional Generative Adversarial Nets*, 2014 ([arXiv:1411.1784](https://arxiv.org/abs/1411.1784)):
#   give both players the label $y$, and choose what to generate.
#
# The data is scikit-learn's 1,797 handwritten 8x8 digits, shipped with scikit-learn (ganforge's `digits`
# spec, upscaled to 16x16). We train a DCGAN for a few hundred steps to watch it learn, then use the pretrained
# generators of ganforge's model zoo (`zoo:dcgan-digits`, `zoo:cgan-digits`: the full 1,500-step trainings of
# `ganforge train dcgan` and `ganforge train cgan --preset digits`) for everything that needs a finished model.
# About two minutes on a laptop CPU; everything it writes goes under `runs/02/`.

# %%
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

import ganforge

RUNS = Path("runs/02")
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)


def show(path, width=None):
    display(Image(filename=str(path), width=width))

# %% [markdown]
# ## The DCGAN architecture (Radford et al. 2015, §3)
#
# The paper's guidelines for stable deep convolutional GANs:
#
# - no pooling: **strided convolutions** in $D$, **strided transposed convolutions** in $G$;
# - **batch normalization** in both networks (not on $G$'s output nor $D$'s input);
# - no fully connected hidden layers;
# - **ReLU** in $G$ with a **tanh** output (images in $[-1, 1]$), **LeakyReLU** (slope 0.2) in $D$;
# - weights from $\mathcal{N}(0, 0.02)$, Adam with learning rate $2 \cdot 10^{-4}$ and $\beta_1 = 0.5$.
#
# The zoo's generator, as a plain `torch.nn.Module` (`G.G`): $z \in \mathbb{R}^{100}$ goes to a 4x4 feature map,
# and each transposed convolution doubles the resolution, 4 -> 8 -> 16.

# %%
G = ganforge.load("zoo:dcgan-digits")
print(G.G)
print(f"{sum(p.numel() for p in G.G.parameters()):,} parameters; images {G.info.shape}")

# %% [markdown]
# ## Training it: a few hundred steps
#
# `ganforge.train` runs the same loop as `ganforge train` on the command line. Each step is one update of $D$
# (on a real batch and a generated one) and one of $G$ with the non-saturating loss. We stop at 300 of the
# preset's 1,500 steps; the run folder holds the sample grids (the same fixed noise at every sample step), the
# loss plot and a checkpoint that `ganforge.load` reads.

# %%
summary = ganforge.train("dcgan", preset="digits", out=RUNS / "dcgan", steps=300, sample_every=100)
run = Path(summary["run_dir"])
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, step in zip(axes, (100, 200, 300)):
    ax.imshow(plt.imread(run / "samples" / f"step-{step:06d}.png"), cmap="gray")
    ax.set_title(f"step {step}")
    ax.axis("off")
plt.show()
show(summary["loss_plot"], width=500)

# %% [markdown]
# The loss plot's accuracy panel is the first health signal to read: when $D$ is right about nearly every
# real *and* every generated image, $G$'s gradient is vanishing; near 1/2 on both, $D$ cannot tell (notebook 3).
#
# ## The finished model
#
# `G.sample(n, seed=...)` returns images in $[-1, 1]$ (N x C x H x W); `G.save` writes a grid the way training
# does. 64 samples of the zoo's DCGAN:

# %%
x = G.sample(64, seed=0)
print(x.shape, f"values in [{x.min():.2f}, {x.max():.2f}]")
show(G.save(x, RUNS / "zoo-dcgan.png"), width=400)

# %% [markdown]
# ### How good? Scored by a digits classifier
#
# `ganforge.evaluate` compares generated images with the data's test split in the feature space of a small CNN
# trained on the digits (bundled with ganforge): **FID** (Heusel et al. 2017; notebook 7 explains it) and the
# **modes** the classifier finds among the samples (of 10), with KL between that class histogram and uniform.
# Every result also carries two reference points at the same sample count: the *floor* (real training images
# against the test images: as good as it gets) and the *ceiling* (the same network, untrained).

# %%
def score(source):
    r = ganforge.evaluate(source, metrics=["fid", "modes"], out=False)
    m, ref = r["metrics"], r["reference_points"]
    print(f"{str(source):28s} FID {m['fid']:7.1f}  modes {m['modes']:2d}  KL {m['kl']:.3f}   "
          f"(floor: FID {ref['floor']['metrics']['fid']:.1f}; ceiling: FID {ref['ceiling']['metrics']['fid']:.1f})")
    return m


short, zoo = score(run), score("zoo:dcgan-digits")
assert zoo["modes"] == 10 and zoo["fid"] < short["fid"]

# %% [markdown]
# ### Walking the latent space
#
# Radford et al. (§6.1) walk between random points of $z$-space: if $G$ had memorised its training images the
# walk would jump between them; instead the digits morph smoothly. `ganforge.interpolate` writes such walks
# (spherical interpolation, since $z$ is Gaussian) as a GIF, an MP4 or a PNG strip (one row per walk).

# %%
show(ganforge.interpolate("zoo:dcgan-digits", RUNS / "walk.png", n=4, points=3, frames=8, scale=2), width=800)
show(ganforge.interpolate("zoo:dcgan-digits", RUNS / "walk.gif", n=8, points=4, frames=12))

# %% [markdown]
# ## Conditional GANs (Mirza & Osindero 2014)
#
# Feed the label $y$ to both players: $G(z, y)$ generates an image of class $y$ and $D(x, y)$ judges whether $x$
# is a real image *of that class*. The game of their **eq. 2**:
#
# $$\min_G \max_D V(D, G) = \mathbb{E}_{x, y \sim p_\text{data}}[\log D(x \mid y)] + \mathbb{E}_{z \sim p_z,\, y}[\log(1 - D(G(z \mid y) \mid y))]$$
#
# In ganforge's `cgan`, $G$ concatenates a learned label embedding to $z$; $D$ gets the embedding as extra input
# channels (`cond=concat`, the paper's way) or through Miyato & Koyama's projection,
# $D(x, y) = \psi(\phi(x)) + \mathrm{embed}(y)^\top \phi(x)$ (`cond=projection`).
#
# Below: one row per digit, and the **same** ten noise vectors in every row (`seed=0` draws the same $z$ each
# time). The label decides the digit, the noise decides the style (thickness, slant) across a column.

# %%
C = ganforge.load("zoo:cgan-digits")
rows = torch.cat([C.sample(10, seed=0, labels=digit) for digit in range(10)])
show(C.save(rows, RUNS / "cgan-rows.png", nrow=10), width=420)

# %% [markdown]
# ### Does it draw the digit it was asked for?
#
# `metrics="acc"`: draw samples for every label in turn and let the bundled digits classifier read them; the
# share read as the label asked for, next to the classifier's accuracy on real test digits (`acc_real`) and the
# ceiling of an untrained generator (chance: 0.1).

# %%
r = ganforge.evaluate("zoo:cgan-digits", metrics="acc", out=False)
m = r["metrics"]
print(f"label accuracy {m['acc']:.3f} (real test digits: {m['acc_real']:.3f}; "
      f"untrained G: {r['reference_points']['ceiling']['metrics']['acc']:.2f})")
print("per digit:", " ".join(f"{k}:{a:.2f}" for k, a in enumerate(m["acc_per_class"])))
print("protocol:", r["protocol"]["labels"], "-", r["protocol"]["num_generated"], "samples")
assert m["acc"] > 0.9

# %% [markdown]
# ## Try it yourself
#
# - The full DCGAN run: `ganforge.train("dcgan", preset="digits", out="runs/02/full")` (1,500 steps, about as
#   long as the zoo model took: its FID should land near the zoo's).
# - The paper's learning rates (`d_lr=2e-4`): watch $D$'s accuracy in the loss plot (docs/dcgan.md has the
#   measured effect).
# - `ganforge.train("cgan", preset="digits-projection", out=...)`: the projection discriminator; compare the
#   label accuracy.
# - From a terminal: `ganforge sample zoo:cgan-digits --label 7` writes a grid of sevens.
