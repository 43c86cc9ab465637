"""Train the bundled digits evaluator (ganforge.metrics.digits) and write the weights shipped in the package.

Data: scikit-learn's load_digits() (1,797 8x8 images, values 0..16), mapped to [-1, 1] as v / 8 - 1.
Split (the same rule as the `digits` data spec): sample i, in load_digits order, is TEST iff i % 5 == 0,
else TRAIN -> 1,437 train / 360 test. Only the train split is used for training; the test split is used
once at the end to report accuracy (no model selection on it).

Light augmentation (random affine: scale 0.9..1.1, rotation +-10 degrees, shift +-1 pixel, bilinear) makes
the classifier robust to the slightly blurry / off-centre digits generators produce.

Deterministic: fixed seeds, one thread, torch.use_deterministic_algorithms(True); re-running on the same
machine and torch version reproduces digits_cnn.safetensors byte for byte (its sha256 is in the json).

    python scripts/train_digits_evaluator.py [--out DIR]      # default: src/ganforge/metrics/weights
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from ganforge.metrics.digits import FEATURE_DIM, DigitsEvaluator  # noqa: E402

SEED = 0
EPOCHS = 60
BATCH_SIZE = 32
LR = 2e-3
WEIGHT_DECAY = 1e-4
COMMAND = "python scripts/train_digits_evaluator.py"
SPLIT_RULE = "sample i of sklearn.datasets.load_digits() is test iff i % 5 == 0, else train"


def digits_split() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train": (images N x 1 x 8 x 8 in [-1, 1], labels N), "test": (...)}."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    is_test = torch.arange(len(labels)) % 5 == 0
    return {"train": (images[~is_test], labels[~is_test]), "test": (images[is_test], labels[is_test])}


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random small affine per image; done on x + 1 so the padding is background (-1), not grey."""
    n = x.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)  # noqa: E731
    scale, angle = u(0.9, 1.1), u(-10, 10) * math.pi / 180
    shift_x, shift_y = u(-0.25, 0.25), u(-0.25, 0.25)  # 0.25 in grid units = 1 pixel of 8
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def accuracy(model: DigitsEvaluator, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    return (model.logits(images).argmax(1) == labels).double().mean().item()


def train(train_images: torch.Tensor, train_labels: torch.Tensor) -> DigitsEvaluator:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = DigitsEvaluator()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(train_labels) / BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=EPOCHS * steps_per_epoch)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(train_labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            x = augment(train_images[idx], generator)
            loss = F.cross_entropy(model.logits(x), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  train loss {total / len(order):.4f}  "
                  f"train acc {accuracy(model, train_images, train_labels):.4f}", flush=True)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "src/ganforge/metrics/weights",
                        help="directory for digits_cnn.safetensors and digits_cnn.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    data = digits_split()
    model = train(*data["train"])
    test_acc = accuracy(model, *data["test"])

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "digits_cnn.safetensors"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # one metadata key only: safetensors writes the metadata map in hash order, which varies per process
    save_file(state, str(weights), metadata={"format": "ganforge-digits-evaluator/1"})
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    info = {
        "model": "ganforge.metrics.digits.DigitsEvaluator",
        "test_accuracy": round(test_acc, 6),
        "num_train": len(data["train"][1]),
        "num_test": len(data["test"][1]),
        "split_rule": SPLIT_RULE,
        "command": COMMAND,
        "sha256": sha,
        "input_protocol": {
            "shape": "N x 1 x H x W float (3-channel digits:stacked: each channel classified separately)",
            "range": "[-1, 1]; a load_digits pixel v in 0..16 is v / 8 - 1 (background -1)",
            "resize": "to 8x8 (the data's own resolution): F.interpolate mode='area' when H, W >= 8, "
                      "bilinear (align_corners=False) when smaller",
            "feature_dim": FEATURE_DIM,
            "features": "penultimate layer, after ReLU",
        },
        "training": {"seed": SEED, "epochs": EPOCHS, "batch_size": BATCH_SIZE, "optimizer": "AdamW",
                     "lr": LR, "weight_decay": WEIGHT_DECAY, "schedule": "OneCycleLR",
                     "augmentation": "random affine: scale 0.9..1.1, rotation +-10 deg, shift +-1 px",
                     "torch": torch.__version__.split("+")[0], "threads": 1, "deterministic": True},
    }
    (args.out / "digits_cnn.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"test accuracy {test_acc:.4f} on {info['num_test']} images; wrote {weights} "
          f"({weights.stat().st_size / 1024:.0f} KiB, sha256 {sha[:12]}...) "
          f"in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
