# %% [markdown]
# # 3. Stable training and mode collapse
#
# GANs fail in recognisable ways:
#
# - **$D$ wins**: it tells every real from every generated sample, $D(G(z)) \to 0$, and $G$'s gradient vanishes
#   (notebook 1 showed why the non-saturating loss helps).
# - **Mode collapse**: $G$ maps many $z$ to a few outputs that currently fool $D$ ("the Helvetica scenario",
#   Goodfellow 2016, NIPS tutorial §5.1.1); $D$ learns to reject them, $G$ hops to other modes, and the game
#   oscillates instead of converging.
#
# The standard test bed is the **8-Gaussian ring** of the PacGAN paper (Lin et al. 2018,
# [arXiv:1712.04086](https://arxiv.org/abs/1712.04086), §5.1): 8 modes on the unit circle, std 0.01. Its metrics,
# on 2,500 generated points: **modes** covered (a mode counts when it has a high-quality point), the
# **high-quality** share (points within 3 std of their nearest mode) and the **reverse KL** between the
# high-quality points' mode histogram and uniform. `ganforge.evaluate(run, metrics="modes")` computes them.
#
# We train the plain GAN and watch it collapse, then two remedies: WGAN-GP, and PacGAN with an EMA generator
# (from the zoo: 60,000 steps). About three minutes on a laptop CPU; everything it writes goes under `runs/03/`.

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Image, display

import ganforge

RUNS = Path("runs/03")
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)


def modes(source):
    """PacGAN's metrics on 2,500 points (the protocol of docs/stable.md)."""
    return ganforge.evaluate(source, metrics="modes", num=2500, reference=False, out=False)["metrics"]


def rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]

# %% [markdown]
# ## The plain GAN on the ring
#
# `gan --preset ring`: Goodfellow's GAN with MLPs (3 hidden layers of 128) and the non-saturating loss, Adam
# $10^{-3}$. We keep a checkpoint every 250 steps (`keep_checkpoints=0` keeps them all) so that every stage of
# the run can be scored afterwards, and a scatter plot of 2,000 points from a fixed noise batch every 250.

# %%
plain = ganforge.train("gan", preset="ring", out=RUNS / "plain", steps=3000, sample_every=250, num_samples=2000,
                       checkpoint_every=250, keep_checkpoints=0)
shown = [250, 500, 750, 1000, 1250, 1500, 2000, 3000]
fig, axes = plt.subplots(2, 4, figsize=(16, 8))
for ax, step in zip(axes.flat, shown):
    ax.imshow(plt.imread(RUNS / "plain" / "samples" / f"step-{step:06d}.png"))
    ax.set_title(f"step {step}")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Generated points (red) over real ones (grey). For the first 1,500 steps $G$ puts everything on one arc or one
# or two modes at a time, and *hops*: the modes it covers at one sample step are abandoned at the next, once $D$
# has learned to reject them. Later it spreads over the ring, but many points stay on the bridges between
# modes. Scoring every checkpoint makes both visible:

# %%
steps, history = list(range(250, 3001, 250)), []
for step in steps:
    history.append(modes(RUNS / "plain" / "checkpoints" / f"step-{step:06d}"))
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.2))
a1.plot(steps, [h["modes"] for h in history], "o-")
a1.set_ylim(0, 8.5)
a1.set_ylabel("modes covered (of 8)")
a2.plot(steps, [h["high_quality"] for h in history], "o-")
a2.set_ylim(0, 1)
a2.set_ylabel("high-quality share")
for ax in (a1, a2):
    ax.set_xlabel("step")
plt.show()
for step, h in zip(steps, history):
    print(f"step {step:5d}: {h['modes']} modes, {h['high_quality']:.1%} high quality, reverse KL {h['reverse_kl']:.3f}")
assert min(h["modes"] for h in history[:6]) <= 4      # collapsed onto half the modes or fewer at some point (here: 0-2)

# %% [markdown]
# How a run ends depends on the seed: over seeds 0-4, 15,000 steps of this setting end with 6.6 modes on average
# (5 at worst) and 65% high quality (docs/stable.md, Results).
#
# %% [markdown]
# ### The health signals
#
# `metrics.jsonl` logs $D$'s accuracy on real and on generated samples at every log step (the progress line
# shows them too). An accuracy on fakes that falls while $G$ has few modes means $G$ is fooling $D$ *with the
# modes $D$ currently likes*; then $D$ catches up and $G$ moves on. docs/stable.md lists every signal.

# %%
log = rows(RUNS / "plain")
plt.figure(figsize=(8, 3))
plt.plot([r["step"] for r in log], [r["D/acc_real"] for r in log], label="D accuracy on real")
plt.plot([r["step"] for r in log], [r["D/acc_fake"] for r in log], label="D accuracy on generated")
plt.axhline(0.5, color="k", ls=":")
plt.xlabel("step")
plt.legend()
plt.show()

# %% [markdown]
# ## Remedy 1: WGAN-GP (Gulrajani et al. 2017)
#
# Arjovsky et al. 2017 ([arXiv:1701.07875](https://arxiv.org/abs/1701.07875)) replace the JS divergence, which is
# constant (log 2) between distributions with disjoint supports and so gives $G$ no direction, by the
# Wasserstein-1 distance in its Kantorovich-Rubinstein dual form
# $W(p_\text{data}, p_g) = \sup_{\|f\|_L \le 1} \mathbb{E}_{p_\text{data}}[f(x)] - \mathbb{E}_{p_g}[f(x)]$:
# the critic $f$ need not classify, only be 1-Lipschitz. WGAN clips the weights to enforce it; WGAN-GP
# ([arXiv:1704.00028](https://arxiv.org/abs/1704.00028), **eq. 3**) penalises the gradient norm instead, at random
# points $\hat x$ between real and generated samples:
#
# $$L = \mathbb{E}_{\tilde x \sim p_g}[D(\tilde x)] - \mathbb{E}_{x \sim p_\text{data}}[D(x)] + \lambda\, \mathbb{E}_{\hat x}\big[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2\big]$$
#
# The `ring` preset uses the authors' own toy setting ($\lambda = 0.1$, Adam $5 \cdot 10^{-4}$, $\beta = (0.5, 0.9)$,
# 5 critic steps per $G$ step) with a learning-rate decay over the second half; we run 2,000 of its 6,000 steps.
# `D/W` in the log is the critic's estimate of $W$: it falls as the samples improve.

# %%
wgp = ganforge.train("wgan_gp", preset="ring", out=RUNS / "wgan_gp", steps=2000, sample_every=1000,
                     num_samples=2000)
log = rows(RUNS / "wgan_gp")
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [1.4, 1]})
a1.plot([r["step"] for r in log], [r["D/W"] for r in log])
a1.set_xlabel("step")
a1.set_ylabel("D/W (critic's estimate of W)")
a2.imshow(plt.imread(RUNS / "wgan_gp" / "samples" / "step-002000.png"))
a2.axis("off")
plt.show()

# %% [markdown]
# ## Remedy 2: PacGAN and an averaged generator
#
# PacGAN (Lin et al. 2018) lets $D$ judge **packs** of $m$ samples at once (`pac=4`): a pack from a collapsed $G$
# holds near-duplicates, which real packs rarely do, so $D$ can punish the collapse that a one-sample $D$ cannot
# see. Averaging $G$'s weights over training (an exponential moving average, `ema_decay=0.999`; Yazıcı et al.
# 2019) removes the jitter of the last steps. The zoo's `gan-ring` is `ganforge train gan --preset ring-best`:
# both, with 3 $D$ steps per $G$ step and a learning-rate decay, 60,000 steps (docs/stable.md: 8 modes and
# 97.5% high quality on average over 5 seeds; PacGAN4 published 7.8 and 95.9%).

# %%
path = ganforge.sample("zoo:gan-ring", n=2500, out=RUNS / "zoo-gan-ring.png")
display(Image(filename=str(path), width=320))

# %% [markdown]
# ## Side by side

# %%
results = {"plain gan, 3,000 steps": modes(RUNS / "plain"),
           "wgan_gp, 2,000 steps": modes(RUNS / "wgan_gp"),
           "zoo:gan-ring (PacGAN4 + EMA, 60,000 steps)": modes("zoo:gan-ring")}
print(f"{'':44s} modes  high quality  reverse KL")
for name, m in results.items():
    print(f"{name:44s} {m['modes']:5d}  {m['high_quality']:12.1%}  {m['reverse_kl']:10.4f}")

zoo = results["zoo:gan-ring (PacGAN4 + EMA, 60,000 steps)"]
assert zoo["modes"] == 8 and zoo["high_quality"] > 0.9
assert results["wgan_gp, 2,000 steps"]["modes"] >= 7

# %% [markdown]
# ## The rest of the toolbox
#
# Every adversarial recipe accepts the improved-techniques keys (docs/stable.md): `feature_matching` and
# `minibatch_discrimination` (Salimans et al. 2016), `label_smoothing` (one-sided), `historical_averaging`, `vbn`, `mbstd`
# (ProGAN's minibatch standard deviation), TTUR (`g_lr` != `d_lr`, Heusel et al. 2017), `r1_gamma` / `r2_gamma`
# (Mescheder et al. 2018), `instance_noise`, `diff_augment` and `ada` (augmenting $D$'s inputs), `pac`,
# `ema_decay`; the loss is a key too (`loss=ns|minimax|wasserstein|hinge|lsgan|ragan|rpgan`), and `sngan`
# (spectral normalisation, Miyato et al. 2018) is a recipe.
#
# ## Try it yourself
#
# - `ganforge.train("gan", preset="ring", pac=4, out=...)`: packing alone, at the plain run's 3,000 steps.
# - The 25-mode grid: `preset="grid"` and `preset="grid-best"` (harder: docs/stable.md's results).
# - `ganforge.train("wgan", preset="ring", out=...)`: weight clipping instead of the penalty.
# - From a terminal: `python benchmarks/mode_collapse.py --recipe gan --preset ring --seeds 3` (the protocol
#   over seeds).
