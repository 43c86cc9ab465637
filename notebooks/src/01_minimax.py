# %% [markdown]
# # 1. The minimax game and Figure 1
#
# Goodfellow et al., *Generative Adversarial Nets*, 2014 ([arXiv:1406.2661](https://arxiv.org/abs/1406.2661)).
#
# A generator $G$ maps noise $z \sim p_z$ to data space; a discriminator $D(x) \in [0, 1]$ says how likely $x$
# is to be real. They play the two-player minimax game of the paper's **eq. 1**:
#
# $$\min_G \max_D V(D, G) = \mathbb{E}_{x \sim p_\text{data}}[\log D(x)] + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))]$$
#
# This notebook checks the paper's theory numerically on the 1-D example of its Figure 1, where every density
# can be written down:
#
# 1. **Proposition 1**: for a fixed $G$, the best discriminator is $D^*_G(x) = \dfrac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}$.
# 2. **Theorem 1**: with $D = D^*_G$ the game's value is $C(G) = -\log 4 + 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_g)$,
#    so the global minimum is $p_g = p_\text{data}$, where $D^* = 1/2$ and $V = -\log 4$.
# 3. The whole game, trained with ganforge (`gan --preset gauss1d`), ends there, and draws Figure 1 on the way.
#
# Runs on a laptop CPU in about a minute. Everything this notebook writes goes under `runs/01/`.

# %%
import json
import math
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Image, display

import ganforge

RUNS = Path("runs/01")
shutil.rmtree(RUNS, ignore_errors=True)      # start clean: the notebook can be run again
RUNS.mkdir(parents=True)
torch.manual_seed(0)

MU, SD = 2.0, 0.5                            # p_data = N(2, 0.5^2): ganforge's data spec toy:gauss1d


def pdf(x, mu, sd):
    return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))

# %% [markdown]
# ## Proposition 1: the optimal discriminator
#
# For a fixed $G$, $V(D, G) = \int_x p_\text{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\, dx$. For each $x$ the
# integrand $a \log y + b \log(1 - y)$ is maximised at $y = a / (a + b)$, hence
#
# $$D^*_G(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)} \qquad \text{(Proposition 1)}$$
#
# We fix a generator whose samples follow $p_g = \mathcal{N}(1.5, 0.8^2)$ and train only $D$ (a small MLP, in plain
# PyTorch) by gradient *ascent* on $V$. With $D = \sigma(a)$ for a logit $a$, $\log D = -\mathrm{softplus}(-a)$ and
# $\log(1 - D) = -\mathrm{softplus}(a)$: numerically safe forms of the two terms.

# %%
MU_G, SD_G = 1.5, 0.8                        # the fixed generator's distribution p_g

D = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.LeakyReLU(0.2), torch.nn.Linear(64, 64),
                        torch.nn.LeakyReLU(0.2), torch.nn.Linear(64, 1))
opt = torch.optim.Adam(D.parameters(), lr=3e-3, betas=(0.5, 0.999))
for step in range(2000):
    real = MU + SD * torch.randn(512, 1)
    fake = MU_G + SD_G * torch.randn(512, 1)             # G(z), z ~ N(0, 1)
    V = -F.softplus(-D(real)).mean() - F.softplus(D(fake)).mean()
    opt.zero_grad()
    (-V).backward()                                      # maximise V over D
    opt.step()

xs = torch.linspace(-1.0, 5.0, 601)
p_data, p_g = pdf(xs, MU, SD), pdf(xs, MU_G, SD_G)
d_star = p_data / (p_data + p_g)
with torch.no_grad():
    d_trained = torch.sigmoid(D(xs[:, None]))[:, 0]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(xs, p_data, "k:", label="p_data = N(2, 0.5²)")
ax.plot(xs, p_g, "g", label="p_g = N(1.5, 0.8²)")
ax2 = ax.twinx()
ax2.plot(xs, d_star, "r", lw=3, alpha=0.4, label="D*(x) = p_data / (p_data + p_g)")
ax2.plot(xs, d_trained, "b--", label="trained D(x)")
ax2.set_ylim(0, 1)
fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize="small")
ax.set_xlabel("x")
plt.show()

# where both densities carry mass (mu +- 1.5 sd of p_data) the trained D is D*
inside = (xs - MU).abs() <= 1.5 * SD
gap = (d_trained - d_star)[inside].abs().max().item()
print(f"max |D - D*| on [{MU - 1.5 * SD}, {MU + 1.5 * SD}]: {gap:.3f}")
assert gap < 0.06, gap

# %% [markdown]
# Far from both densities the trained $D$ wanders off $D^*$: nothing is sampled there, so nothing constrains it.
#
# ## Theorem 1: the value of the game is a Jensen-Shannon divergence
#
# Substituting $D^*_G$ into $V$ gives the *virtual training criterion*
#
# $$C(G) = \max_D V(D, G) = \mathbb{E}_{p_\text{data}}\Big[\log \frac{p_\text{data}}{p_\text{data} + p_g}\Big] + \mathbb{E}_{p_g}\Big[\log \frac{p_g}{p_\text{data} + p_g}\Big] = -\log 4 + 2\,\mathrm{JSD}(p_\text{data} \,\|\, p_g)$$
#
# with $\mathrm{JSD}(p \,\|\, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m)$, $m = (p + q)/2$. The JSD is
# $\ge 0$ and zero only when $p = q$: the generator's best move is $p_g = p_\text{data}$, where $C(G) = -\log 4$.
# Both sides, by numerical integration on a fine grid, and the value the trained $D$ reaches:

# %%
grid = torch.linspace(-6.0, 10.0, 200_001, dtype=torch.float64)
dx = (grid[1] - grid[0]).item()
pd, pg = pdf(grid, MU, SD), pdf(grid, MU_G, SD_G)
ds = pd / (pd + pg)
C = ((pd * torch.log(ds) + pg * torch.log1p(-ds)).sum() * dx).item()
m = (pd + pg) / 2
jsd = (0.5 * (pd * torch.log(pd / m)).sum() * dx + 0.5 * (pg * torch.log(pg / m)).sum() * dx).item()
with torch.no_grad():
    dt = torch.sigmoid(D(grid[:, None].float()))[:, 0].double().clamp(1e-7, 1 - 1e-7)
V_trained = ((pd * torch.log(dt) + pg * torch.log1p(-dt)).sum() * dx).item()

print(f"C(G) = V(D*, G)          = {C:.5f}")
print(f"-log 4 + 2 JSD(p_data||p_g) = {-math.log(4) + 2 * jsd:.5f}   (JSD = {jsd:.4f} nats)")
print(f"V(trained D, G)          = {V_trained:.5f}   (at most C(G): D* is the maximiser)")
print(f"-log 4                   = {-math.log(4):.5f}")
assert abs(C - (-math.log(4) + 2 * jsd)) < 1e-6
assert V_trained <= C + 1e-3 and C - V_trained < 0.02

# %% [markdown]
# ## The whole game: ganforge's `gauss1d` preset
#
# Now both players learn, as in the paper's **Algorithm 1**: $k$ steps of $D$ (here $k = 2$), then one step of $G$,
# on minibatches. The preset plays the *saturating* game of eq. 1 exactly (`loss=minimax`), with an MLP $G$ fed
# 8-D noise, on $p_\text{data} = \mathcal{N}(2, 0.5^2)$; it is what `ganforge train gan --preset gauss1d` runs.
# At every sample step (here every 100 steps) the gan recipe draws the paper's **Figure 1** (black dots:
# $p_\text{data}$; green: $p_g$; blue dashes: $D$) to `plots/figure1-step-NNNNNN.png`, and it logs $V(D, G)$ as
# `D/V` in `metrics.jsonl`.

# %%
summary = ganforge.train("gan", preset="gauss1d", out=RUNS / "gauss1d", sample_every=100)
run = Path(summary["run_dir"])
print(summary["step"], "steps,", summary["seconds_this_session"], "s; figures in", run / "plots")

# %% [markdown]
# Four of those figures side by side, like the paper's panels (a)-(d): early on, $p_g$ sits where $G$'s
# initialisation put it and $D$ separates the two; then $D$ tracks $D^*$, $p_g$ moves towards the data along $D$'s
# slope, and at the end $p_g = p_\text{data}$ and $D(x) = 1/2$ where the data is. Each title gives the total
# variation between $p_g$'s histogram and $p_\text{data}$, and $D$'s range where both densities carry mass.

# %%
steps = [100, 200, 400, 3000]
fig, axes = plt.subplots(2, 2, figsize=(12, 7))
for ax, s, tag in zip(axes.flat, steps, "abcd"):
    ax.imshow(plt.imread(run / "plots" / f"figure1-step-{s:06d}.png"))
    ax.set_title(f"({tag}) step {s}")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## At the end: $D = 1/2$, $V = -\log 4$, $p_g = p_\text{data}$
#
# `metrics.jsonl` has one row per log step. $V$ climbs to $-\log 4 \approx -1.386$ and the mean of $D$ on real
# and generated samples to 1/2: the discriminator can no longer tell them apart.

# %%
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
step = [r["step"] for r in rows]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.5))
a1.plot(step, [r["D/V"] for r in rows], label="V(D, G)")
a1.axhline(-math.log(4), color="k", ls=":", label="-log 4")
a1.set_xlabel("step")
a1.legend()
a2.plot(step, [r["D/D_real"] for r in rows], label="mean D(x), x real")
a2.plot(step, [r["D/D_fake"] for r in rows], label="mean D(G(z))")
a2.axhline(0.5, color="k", ls=":")
a2.set_xlabel("step")
a2.legend()
plt.show()

last = rows[-1]
print(f"step {last['step']}: V = {last['D/V']:.4f}, D(real) = {last['D/D_real']:.3f}, D(fake) = {last['D/D_fake']:.3f}")
assert abs(last["D/V"] + math.log(4)) < 0.05
assert abs(last["D/D_real"] - 0.5) < 0.05 and abs(last["D/D_fake"] - 0.5) < 0.05

# %% [markdown]
# The generator itself, loaded from the run folder with `ganforge.load`: `G.sample(n, seed=...)` draws $n$ points,
# `G.save` writes them the way training does (for 1-D points: a histogram). The total variation between the
# histogram of 100,000 samples and $p_\text{data}$ is small (the sampling noise of 100 bins alone is about 0.01).

# %%
G = ganforge.load(run)
x = G.sample(100_000, seed=1)[:, 0]
print(f"mean {x.mean():.3f} (data 2.0), std {x.std():.3f} (data 0.5)")

edges = torch.linspace(MU - 5 * SD, MU + 5 * SD, 101)
counts = torch.histc(x, bins=100, min=edges[0].item(), max=edges[-1].item()) / len(x)
cdf = 0.5 * (1 + torch.erf((edges - MU) / (SD * math.sqrt(2))))
tv = 0.5 * ((counts - (cdf[1:] - cdf[:-1])).abs().sum() + (1 - counts.sum())).item()
print(f"total variation between p_g's histogram and p_data: {tv:.3f}")
assert tv <= 0.05

real = MU + SD * torch.randn(100_000, 1)                # p_data itself, drawn under the histogram
display(Image(filename=str(G.save(x[:, None], RUNS / "samples.png", real=real))))

# %% [markdown]
# ## Why practice uses the non-saturating loss
#
# Early in training $D$ rejects the generated samples confidently, $D(G(z)) \approx 0$, and the minimax generator
# loss $\log(1 - D(G(z)))$ is flat there (paper, §3): with $D = \sigma(a)$, its gradient with respect to the logit is
# $-\sigma(a) = -D$, which vanishes. The paper suggests maximising $\log D(G(z))$ instead, whose gradient is
# $1 - D$: largest exactly when $G$ is worst. ganforge's `loss=ns` (the default of every recipe) is this one;
# `loss=minimax` is eq. 1 as written.

# %%
a = torch.linspace(-8, 8, 400, requires_grad=True)
g_minimax, = torch.autograd.grad(torch.log1p(-torch.sigmoid(a)).sum(), a)      # d/da log(1 - D)
g_ns, = torch.autograd.grad(F.logsigmoid(a).sum(), a)                         # d/da log D
d = torch.sigmoid(a).detach()
plt.figure(figsize=(6, 3.5))
plt.plot(d, g_minimax.abs(), label="|d/da log(1 - D(G(z)))|  (minimax)")
plt.plot(d, g_ns.abs(), label="|d/da log D(G(z))|  (non-saturating)")
plt.xlabel("D(G(z))")
plt.ylabel("gradient magnitude on the logit")
plt.legend()
plt.show()
assert g_minimax.abs()[d < 0.01].max() < 0.01 and g_ns.abs()[d < 0.01].min() > 0.99

# %% [markdown]
# ## Try it yourself
#
# - Move the fixed generator (`MU_G`, `SD_G`) onto the data: $D^*$ becomes flat at 1/2 and JSD goes to 0.
# - `ganforge.train("gan", preset="gauss1d", loss="ns", out=...)`: the non-saturating game reaches the same optimum.
# - `d_steps=1` (one D step per G step) or `z_dim=1`: see the figure titles (the TV) get worse, and
#   `docs/gan.md` for why a 1-D $z$ gives a spiky $p_g$.
# - From a terminal: `ganforge train gan --preset gauss1d` writes the same run.
