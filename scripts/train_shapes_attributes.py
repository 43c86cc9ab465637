"""Train the bundled shapes attribute classifier (ganforge.metrics.attributes) and write its shipped weights.

Data: the `shapes` spec (data/specs_shapes.py) at 32x32: the whole train split (20,000 images, render seed 0)
for training, the first 2,000 of the test split (seed 1) for the reported accuracy (used once, at the end; no
model selection on it). Labels: every attribute (kind, color, background, size, position).

Outlier exposure (Hendrycks, Mazeika & Dietterich 2019, arXiv:1812.04606), so that "the kind head is sure"
means "there is a shape": every batch also holds a quarter as many images with no shape in them (uniform
noise, smooth random colour fields, flat fields, real images with their pixels permuted), and the kind head
is trained towards the uniform distribution on them (cross-entropy to uniform, eq. 1 of the paper); the other
heads never see them. The json records how often real test images and held-out outliers get a kind
probability >= 0.9 (`kind_recognition`, what benchmarks/shapes.py counts).

Augmentation, so generated images are judged fairly: Gaussian pixel noise (std 0.03), a per-channel colour
offset (+-0.06), and, for half the images, a 32 -> 16 -> 32 round trip (generators trained at 16x16 are
judged after bilinear upsampling). The test accuracy is reported on clean 32x32 images and on the 16x16 ones.

Deterministic (seeds, one thread, deterministic algorithms):

    python scripts/train_shapes_attributes.py [--out DIR]     # default: src/ganforge/metrics/weights
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ganforge.data.specs_shapes import load_shapes  # noqa: E402
from ganforge.metrics.attributes import HEADS, AttributeClassifier, kind_recognition  # noqa: E402

SEED = 0
EPOCHS = 16
BATCH_SIZE = 64
LR = 2e-3
NUM_TRAIN, NUM_TEST = 20_000, 2_000
OUTLIERS = BATCH_SIZE // 4
COMMAND = "python scripts/train_shapes_attributes.py"


def split(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    data, _ = load_shapes(32, name, n=n)
    return data.x.float() / 127.5 - 1.0, data.attributes


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + 0.03 * torch.randn(x.shape, generator=g) + 0.12 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    small = torch.rand(n, generator=g) < 0.5
    if small.any():
        lo = F.interpolate(x[small], size=(16, 16), mode="area")
        x[small] = F.interpolate(lo, size=(32, 32), mode="bilinear", align_corners=False)
    return x.clamp(-1, 1)


def outliers(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n images without a shape, a quarter of each kind; `x` (real images) lends colours to permute."""
    q = -(-n // 4)
    noise = torch.rand(q, 3, 32, 32, generator=g) * 2 - 1
    side = int(torch.randint(2, 9, (1,), generator=g))
    smooth = F.interpolate(torch.randn(q, 3, side, side, generator=g), size=(32, 32), mode="bilinear",
                           align_corners=False).clamp(-1, 1)
    flat = (torch.rand(q, 3, 1, 1, generator=g) * 2 - 1).expand(q, 3, 32, 32)
    src = x[torch.randint(len(x), (q,), generator=g)].flatten(2)
    shuffled = src[:, :, torch.randperm(32 * 32, generator=g)].view(q, 3, 32, 32)
    return torch.cat([noise, smooth, flat, shuffled])[:n]


def loss_fn(logits: dict, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per head on the len(y) real images; the kind head's cross-entropy to uniform on the rest."""
    n = len(y)
    real = sum(F.cross_entropy(logits[k][:n], y[:, i]) for i, k in enumerate(HEADS))
    kind = logits["kind"][n:]
    return real + (-kind.log_softmax(1).mean() if len(kind) else 0.0)


def recognised(model, x: torch.Tensor) -> float:
    model.eval()
    return round(kind_recognition(model, x)["recognised"], 6)


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    logits = model(x)
    return {k: round((logits[k].argmax(1) == y[:, i]).double().mean().item(), 6) for i, k in enumerate(HEADS)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "src/ganforge/metrics/weights")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    x, y = split("train", NUM_TRAIN)
    xt, yt = split("test", NUM_TEST)
    g = torch.Generator().manual_seed(SEED)
    model = AttributeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    steps = EPOCHS * (NUM_TRAIN // BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(NUM_TRAIN, generator=g)
        for s in range(NUM_TRAIN // BATCH_SIZE):
            idx = order[s * BATCH_SIZE:(s + 1) * BATCH_SIZE]
            batch = torch.cat([x[idx], outliers(x, OUTLIERS, g)])
            loss = loss_fn(model(augment(batch, g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}  test {accuracy(model, xt, yt)}", flush=True)
    clean = accuracy(model, xt, yt)
    xt16 = F.interpolate(F.interpolate(xt, size=(16, 16), mode="area"), size=(32, 32), mode="bilinear",
                         align_corners=False)
    at16 = accuracy(model, xt16, yt)
    held_out = outliers(xt, 2_000, torch.Generator().manual_seed(SEED + 1))
    sure = {"real test images": recognised(model, xt), "real, 16px": recognised(model, xt16),
            **{name: recognised(model, held_out[i * 500:(i + 1) * 500])
               for i, name in enumerate(("uniform noise", "smooth fields", "flat fields", "permuted pixels"))}}

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "shapes_attributes.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"format": "ganforge-shapes-attributes/1"})
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    info = {"model": "ganforge.metrics.attributes.AttributeClassifier",
            "test_accuracy": clean, "test_accuracy_16px": at16,
            "num_train": NUM_TRAIN, "num_test": NUM_TEST,
            "kind_probability_at_least_0.9": sure,
            "data": "shapes at 32x32: train = the train split (20,000 images, seed 0), "
                    "test = first 2,000 of the test split (seed 1)",
            "command": COMMAND, "sha256": sha,
            "input_protocol": "N x 3 x H x W in [-1, 1]; resized to 32x32 (area when larger, bilinear when smaller)",
            "training": {"seed": SEED, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                         "lr": LR, "schedule": "OneCycleLR", "torch": torch.__version__.split("+")[0],
                         "augmentation": "pixel noise 0.03, colour offset +-0.06, 50% 32->16->32 round trip",
                         "outlier_exposure": f"{OUTLIERS} images a batch: uniform noise, smooth fields, flat "
                                             "fields, permuted pixels; kind head -> uniform"}}
    weights.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"test accuracy {clean} (16px: {at16}); kind p >= 0.9: {sure}; wrote {weights} ({weights.stat().st_size // 1024} KiB) "
          f"in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
