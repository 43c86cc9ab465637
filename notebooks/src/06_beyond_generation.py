# %% [markdown]
# # 6. Beyond generation: text-to-image, SimGAN, semi-supervised learning, DANN, inversion
#
# The adversarial game is a tool, not only a sampler. Five uses from the syllabus, each small enough to run
# here:
#
# | | paper | the adversary's job |
# |---|---|---|
# | text-to-image | Reed et al. 2016, GAN-CLS / GAN-INT | judge whether an image matches its caption |
# | SimGAN | Shrivastava et al. 2017 | make simulated images look real, keeping their labels |
# | semi-supervised GAN | Salimans et al. 2016 | a classifier with a "generated" class learns from unlabelled data |
# | DANN | Ganin & Lempitsky 2015 | make features that cannot tell the source domain from the target |
# | inversion | Zhu et al. 2016 | (no game) find the latent of a real image, to edit it through $G$ |
#
# These are short trainings (the docs pages give the full-length numbers). About four minutes on a laptop
# CPU; everything it writes goes under `runs/06/`.

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display
from PIL import Image as PILImage

import ganforge
from ganforge.data import resolve
from ganforge.data.base import Domain
from ganforge.data.captions import parse_attributes
from ganforge.metrics.attributes import attribute_accuracy, load_attribute_classifier
from ganforge.metrics.features import digits_features

RUNS = Path("runs/06")
shutil.rmtree(RUNS, ignore_errors=True)
RUNS.mkdir(parents=True)


def show(path, width=None):
    display(Image(filename=str(path), width=width))


def last_row(path):
    return json.loads(Path(path).read_text().splitlines()[-1])

# %% [markdown]
# ## Text-to-image (Reed et al. 2016, [arXiv:1605.05396](https://arxiv.org/abs/1605.05396))
#
# $G(z, \varphi(t))$ draws an image for a caption embedding $\varphi(t)$; $D(x, \varphi(t))$ scores image-caption
# pairs. **GAN-CLS** (Algorithm 1) gives $D$ a third kind of input, a *real image with a wrong caption*, to be
# scored as fake: $D$ must then check the match, not only realism, and its gradient teaches $G$ to follow the
# text. **GAN-INT** also trains $G$ on interpolated embeddings $\beta \varphi(t_1) + (1 - \beta) \varphi(t_2)$, filling
# the gaps between the training captions. The data: `shapes:captions`, procedurally drawn shapes with captions
# like "a small red circle at the top left on a blue background".
#
# 600 steps of `text2image --preset shapes16` (16x16) take about a minute; the first thing $G$ learns is what
# covers most pixels, the background colour. The bundled shapes attribute classifier checks it: the share of
# images whose background it reads as the caption's, against chance (1 of 8 colours).

# %%
ganforge.train("text2image", preset="shapes16", out=RUNS / "text2image", steps=600, sample_every=600)
T = ganforge.load(RUNS / "text2image")
colours = ["red", "green", "blue", "yellow", "white", "black", "purple", "orange"]
captions = [f"a large white circle in the center on a {c} background" for c in colours for _ in range(8)]
x = T.sample(len(captions), seed=0, text=captions)
show(T.save(x, RUNS / "text2image-backgrounds.png", nrow=8), width=300)
acc = attribute_accuracy(load_attribute_classifier(), x, [parse_attributes(c) for c in captions])
print("one row per caption:", ", ".join(f"'... on a {c} background'" for c in colours))
print(f"background as asked: {acc['background']:.2f} (chance 0.125); kind: {acc['kind']:.2f}; colour: {acc['color']:.2f}")
assert acc["background"] > 0.2

# %% [markdown]
# The shapes themselves take far longer (docs/text2image.md: GAN-INT-CLS at 32x32 reaches 0.87 background
# accuracy at 3,000 steps, the shape's colour only at 14,000; without the matching-aware $D$ the captions hardly
# matter at all). `T.sample(n, text="a red circle")` draws for any caption the encoder can read.
#
# ## SimGAN (Shrivastava et al. 2017, [arXiv:1612.07828](https://arxiv.org/abs/1612.07828))
#
# Labelled synthetic images are free; real ones are not. A **refiner** $R$ makes a synthetic image $x$ look real
# while a **self-regularisation** term keeps it close to $x$, so its label still holds (eq. 1 and 3):
#
# $$\mathcal{L}_R = \sum_i -\log D(R(x_i)) + \lambda \|R(x_i) - x_i\|_1$$
#
# $D$ judges local patches (§2.2) and trains on a history of earlier refined images (§2.3). Here the
# synthetic images are digits rendered from matplotlib's fonts (`fonts`), the real ones scikit-learn's
# handwritten digits.

# %%
summary = ganforge.train("simgan", preset="fonts", out=RUNS / "simgan", steps=300, sample_every=300)
show(Path(summary["run_dir"]) / "plots" / "refined-step-000300.png", width=200)

S = ganforge.load(RUNS / "simgan")
synthetic = Domain(S.recipe.cfg.synthetic, S.info.shape)
raw, labels = synthetic.images(), synthetic.y
with torch.no_grad():
    refined = S.G(raw).clamp(-1, 1)
judge = digits_features()                 # a CNN trained on real digits only
acc_raw = (judge.predict(raw)[:, 0] == labels).float().mean().item()
acc_refined = (judge.predict(refined)[:, 0] == labels).float().mean().item()
shift = (refined - raw).abs().mean().item()
print(f"{len(raw)} font digits: mean |R(x) - x| = {shift:.3f} (pixels in [-1, 1])")
print(f"the real-digit classifier reads the label of {acc_raw:.1%} of raw and {acc_refined:.1%} of refined ones")
assert shift < 0.5 and acc_refined > 0.5

# %% [markdown]
# In pairs, synthetic | refined: the refiner thickens and breaks strokes the way the handwritten digits' 8x8
# blur does, and the self-regularisation keeps most of each font digit. After only 300 steps the classifier of
# real digits reads the refined digits' labels about as often as the raw ones' (a little less on this run): the
# refiner has not yet learned to keep every label, which is what $\lambda$ trades against realism.
# docs/simgan.md's protocol goes further: a classifier trained on refined font digits against one trained on
# the raw ones, both tested on real digits (`python benchmarks/beyond.py simgan`).
#
# ## Semi-supervised learning with a GAN (Salimans et al. 2016, §5)
#
# Make $D$ a classifier over the $K$ real classes **plus one**, "generated". With the $(K{+}1)$-th logit fixed at 0
# and $Z(x) = \sum_k \exp l_k(x)$, $D(x) = Z(x) / (Z(x) + 1)$: the unsupervised GAN loss trains the same features as
# the supervised cross-entropy, on *every* image, labelled or not. $G$ is trained by **feature matching**,
# $\|\mathbb{E} f(x) - \mathbb{E} f(G(z))\|^2$ on $D$'s last hidden layer (§3.1). With 10 labels per digit (100 of the
# 1,437 training images), against the same $D$ trained on the labelled images only:

# %%
errors = {}
for name, preset in (("semi-supervised GAN", "digits"), ("supervised only", "digits-supervised")):
    run = ganforge.train("ssgan", preset=preset, out=RUNS / f"ssgan-{preset}", steps=3000, sample_every=500)
    errors[name] = last_row(Path(run["run_dir"]) / "plots" / "test_error.jsonl")["test_error"]
    print(f"{name:20s} test error {errors[name]:.3f} (360 held-out digits, 10 labels per class)")
assert errors["semi-supervised GAN"] < errors["supervised only"]

# %% [markdown]
# (3,000 steps here: at 1,500 the preset's lr decay over the second half leaves ssgan no better than supervised-only.
# docs/ssgan.md, 3 seeds of the default 10,000 steps: 0.033 against 0.094 at 10 labels per class.)
#
# ## Domain-adversarial training (Ganin & Lempitsky 2015, [arXiv:1409.7495](https://arxiv.org/abs/1409.7495))
#
# A classifier is trained on labelled **source** images (font digits) and applied to unlabelled **target** ones
# (handwritten digits). A domain classifier sits on the same features behind a **gradient reversal layer**:
# identity forward, $-\lambda$ times the gradient backward. Minimising the domain loss through it *maximises*
# it for the feature extractor, which learns features where the two domains look alike (eq. 9-10): the saddle
# point of label loss minus $\lambda$ domain loss. Against the same network trained on the source alone:

# %%
accuracy = {}
for name, preset in (("DANN", "fonts2digits"), ("source only", "fonts2digits-source-only")):
    run = ganforge.train("dann", preset=preset, out=RUNS / f"dann-{preset}", steps=1600, sample_every=1600)
    row = last_row(Path(run["run_dir"]) / "plots" / "accuracy.jsonl")
    accuracy[name] = row["target_accuracy"]
    print(f"{name:12s} accuracy on real digits {row['target_accuracy']:.3f} (on fonts, the source: {row['source_accuracy']:.3f})")
show(RUNS / "dann-fonts2digits" / "plots" / "predictions-step-001600.png", width=500)
assert accuracy["DANN"] > accuracy["source only"] + 0.02

# %% [markdown]
# The picture: real test digits in columns by the class DANN predicts. (docs/dann.md, 3 seeds of the default
# 4,000 steps: 0.781 against 0.660.)
#
# ## Inversion: real images in the latent space (Zhu et al. 2016, [arXiv:1609.03552](https://arxiv.org/abs/1609.03552))
#
# To edit a real image with a GAN, first find the $z$ whose $G(z)$ reproduces it (eq. 2):
# $z^* = \arg\min_z \|G(z) - x\|^2 + \lambda_f \|\phi(G(z)) - \phi(x)\|^2$, solved by Adam from the best of several
# random starts. `ganforge.invert` does it for image files. Held-out digits the zoo's DCGAN never saw, each
# shown as original | reconstruction, and then a walk through latent space from the first to the second:

# %%
test, _ = resolve("digits", split="test", resolution=16)
files = []
for digit in range(6):
    i = int((test.y == digit).nonzero()[0])                      # the first test image of each digit 0-5
    img = ((test.batch(torch.tensor([i]))["real"][0, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    files.append(RUNS / f"digit-{i}.png")
    PILImage.fromarray(img).save(files[-1])
inv = ganforge.invert("zoo:dcgan-digits", files, RUNS / "inverted", steps=200, restarts=8, interpolate=True)
fig, axes = plt.subplots(1, len(files), figsize=(12, 2.2))
for ax, f in zip(axes, inv["files"]):
    ax.imshow(plt.imread(f["inverted"]), cmap="gray")
    ax.axis("off")
plt.show()
show(inv["interpolation"], width=600)
mse, start, rand = (torch.tensor(inv[k]).mean().item() for k in ("mse", "initial_mse", "random_latent_mse"))
print(f"MSE to the originals: random z {rand:.3f}, best of 8 random z {start:.3f}, inverted z {mse:.3f}")
assert mse < start < rand

# %% [markdown]
# ## Try it yourself
#
# - `ganforge.train("text2image", preset="shapes16", matching=False, out=...)`: plain conditional GAN, no
#   matching-aware $D$; compare the background accuracy at the same steps.
# - `adv_weight=0` for SimGAN (self-regularisation alone: no refinement) or `labels_per_class=5` for ssgan.
# - `ganforge invert zoo:dcgan-digits a.png b.png --interpolate` from a terminal.
# - `python benchmarks/beyond.py ssgan` (or `dann`, `simgan`, `text2image`, `invert`) for the docs' numbers.
