"""Adversarial learning beyond plain generation (issue 7): every number of docs/{text2image,simgan,ssgan,dann,
inversion}.md and the README's "beyond generation" table, each next to its baseline.

    python benchmarks/beyond.py text2image   # attribute accuracy of GAN / GAN-CLS / GAN-INT / GAN-INT-CLS
    python benchmarks/beyond.py simgan       # digit classifier trained on raw vs refined font digits, tested on real
    python benchmarks/beyond.py ssgan        # test error at 5/10/20 labels per class: ssgan vs supervised-only
    python benchmarks/beyond.py dann         # target (real digits) accuracy: DANN vs source-only (fonts)
    python benchmarks/beyond.py invert       # reconstruction MSE of held-out digits: inverted vs random latent
    python benchmarks/beyond.py augment      # few real digits: classifier with vs without cGAN samples

Options: --device auto|cpu|cuda, --steps N (override every training's length), --seeds 0,1,2, --quick (tiny
sizes: a smoke run of the script itself, numbers meaningless), --variants / --labels to split a family over
processes, --json FILE to append the result rows. Each family prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ganforge  # noqa: E402
from ganforge.api import load_data, make_config  # noqa: E402
from ganforge.training.trainer import Trainer  # noqa: E402


# -- shared helpers ------------------------------------------------------------------------------------------
def fit(recipe: str, args, out: Path, dataset=None, **overrides):
    """Train a recipe (optionally on an in-memory Data); returns (recipe object, nets, seconds)."""
    kw = {"device": args.device, "sample_every": 10 ** 9, "checkpoint_every": 10 ** 9, "log_every": 10 ** 9,
          **overrides, **args.set}
    if args.steps:
        kw["steps"] = args.steps
    cls, cfg = make_config(recipe, overrides=kw)
    d, info = load_data(cfg)
    if dataset is not None:
        d = dataset
    rec = cls(cfg, info)
    t = Trainer(rec, d, out, progress=False)
    t0 = time.perf_counter()
    t.logs = []          # every 50th step's logged values (D's accuracy, losses), as floats
    for _ in range(cfg.steps):
        logs = t.train_step()
        if t.step % 50 == 0:
            t.logs.append({k: v.item() for k, v in logs.items()})
    return rec, t, time.perf_counter() - t0


def digits_split(split: str):
    from ganforge.data import resolve
    data, _ = resolve("digits", split=split)
    return data.batch(torch.arange(len(data)))["real"], data.y


def train_classifier(x: torch.Tensor, y: torch.Tensor, seed: int, device, epochs: int = 40) -> torch.nn.Module:
    """The bundled digits evaluator's architecture, fresh, trained on (x, y) (8x8, [-1, 1]); no augmentation."""
    from ganforge.metrics.digits import DigitsEvaluator

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitsEvaluator().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x, y = x.to(device), y.to(device)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=g).to(device)
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model.logits(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, x, y) -> float:
    device = next(model.parameters()).device
    pred = torch.cat([model.logits(x[i:i + 512].to(device)).argmax(1).cpu() for i in range(0, len(x), 512)])
    return (pred == y.cpu()).double().mean().item()


def mean_std(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def emit(args, family: str, rows: list[dict], header: list[str]) -> None:
    extra = " ".join(f"--set {k}={v}" for k, v in args.set.items())
    print(f"\n{family}{' ' + extra if extra else ''}:")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r.get(h, "")) for h in header) + " |", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps({"family": family, "device": str(args.device), "set": args.set, **r}) + "\n")


# -- text2image -------------------------------------------------------------------------------------------------
T2I_VARIANTS = {"GAN": (False, False), "GAN-CLS": (True, False), "GAN-INT": (False, True), "GAN-INT-CLS": (True, True)}


def bench_text2image(args, work: Path) -> None:
    from ganforge.data import resolve
    from ganforge.data.captions import parse_attributes
    from ganforge.metrics.attributes import attribute_accuracy, load_attribute_classifier

    preset = {"resolution": 16, "g_width": 16, "d_width": 16, "steps": 30} if args.quick else {}
    n_eval = 64 if args.quick else 1000
    names = args.variants.split(",") if args.variants else list(T2I_VARIANTS)
    judge = load_attribute_classifier()
    test, _ = resolve("shapes:captions:" + str(n_eval), split="test", resolution=preset.get("resolution", 32))
    texts = [caps[0] for caps in test.captions]
    wanted = [parse_attributes(t) for t in texts]
    keys = ["kind", "color", "background", "size", "position", "mean", "all"]
    pool, _ = resolve("shapes:captions", split="test", resolution=preset.get("resolution", 32))
    rows, chance = [], []
    if "GAN" in names:     # once per table: the classifier's own accuracy on real images
        real = attribute_accuracy(judge, test.batch(torch.arange(n_eval))["real"], wanted)
        rows.append({"model": "real test images (classifier ceiling)", **{k: f"{real[k]:.3f}" for k in keys}})
    data = "shapes:captions:2000" if args.quick else "shapes:captions"
    for name in names:
        matching, interpolate = T2I_VARIANTS[name]
        rec, t, secs = fit("text2image", args, work / f"t2i-{name}", data=data, matching=matching,
                           interpolate=interpolate, **preset)
        G = t.sampler().eval()
        device = next(G.parameters()).device
        z = rec.noise(n_eval, "cpu", torch.Generator().manual_seed(123)).to(device)
        with torch.no_grad():
            fake = torch.cat([rec.generate(G, z[i:i + 250], rec.encode_text(texts[i:i + 250]).to(device)).cpu()
                              for i in range(0, n_eval, 250)])
        acc = attribute_accuracy(judge, fake, wanted)
        rows.append({"model": name, **{k: f"{acc[k]:.3f}" for k in keys}, "steps": rec.cfg.steps,
                     "seconds": round(secs)})
        # chance, measured: the same images judged against the caption of another image
        wrong = attribute_accuracy(judge, fake, wanted[1:] + wanted[:1])
        chance.append({"model": f"{name} vs shuffled captions (chance)", **{k: f"{wrong[k]:.3f}" for k in keys}})
        rows[-1]["diversity"] = f"{caption_diversity(rec, G, pool, 16 if args.quick else 40):.2f}"
        from ganforge.viz import save_grid
        save_grid(fake[:64].float(), work / f"t2i-{name}.png", nrow=8)
    emit(args, "text2image", rows + chance, ["model", *keys, "diversity", "steps", "seconds"])


def caption_diversity(rec, G, pool, n_captions: int, per_caption: int = 16) -> float:
    """Within-caption variation of G's samples relative to the real data's: for each of the first `n_captions`
    test captions that at least 2 test images fit (every attribute it names equal), the mean pairwise pixel
    distance of `per_caption` samples (noise seed 7) over that of up to `per_caption` fitting real images;
    the ratio of the two means. 0: G ignores its noise; 1: it varies as much as the data do."""
    from ganforge.data.captions import parse_attributes
    from ganforge.metrics.attributes import pairwise_distance

    device = next(G.parameters()).device
    fake_d, real_d = [], []
    for caps in pool.captions:
        if len(fake_d) == n_captions:
            break
        want = parse_attributes(caps[0])
        fits = [i for i, a in enumerate(pool.attrs) if all(a[k] == v for k, v in want.items())][:per_caption]
        if len(fits) < 2:
            continue
        z = rec.noise(per_caption, "cpu", torch.Generator().manual_seed(7)).to(device)
        with torch.no_grad():
            fake = rec.generate(G, z, rec.encode_text([caps[0]] * per_caption).to(device)).cpu()
        fake_d.append(pairwise_distance(fake))
        real_d.append(pairwise_distance(pool.batch(torch.tensor(fits))["real"]))
    return statistics.mean(fake_d) / statistics.mean(real_d)


# -- simgan -----------------------------------------------------------------------------------------------------
def d_accuracy(logs: list[dict]) -> list[float]:
    """D's accuracy on (real, refined) per logged step: the mean of its accuracy on each half."""
    return [(r["D/acc_real"] + r["D/acc_refined"]) / 2 for r in logs if "D/acc_real" in r]


def bench_simgan(args, work: Path) -> None:
    """Per refiner seed: SimGAN (adversarial + self-regularization) and the ablation without the adversarial
    term (adv_weight=0); a classifier (seeded like the refiner) trained on raw or refined font digits, tested on
    the real test digits; and whether D learned (its accuracy on real vs refined through training)."""
    from ganforge.data.base import Domain

    quick = {"steps": 20} if args.quick else {}
    x_test, y_test = digits_split("test")
    epochs = 2 if args.quick else 40
    acc: dict[str, list[float]] = {}
    d_acc: list[list[float]] = []
    shift: dict[str, list[float]] = {}
    for seed in args.seeds:
        for name, kw in (("SimGAN-refined synthetic", {}), ("refined without the adversarial term (adv_weight=0)",
                                                            {"adv_weight": 0.0})):
            out = work / f"simgan-{seed}-{len(kw)}"
            rec, t, secs = fit("simgan", args, out, seed=seed, **kw, **quick)
            G = t.sampler().eval()
            device = next(G.parameters()).device
            synthetic = Domain(rec.cfg.synthetic, rec.info.shape)
            raw = synthetic.images()
            with torch.no_grad():
                refined = torch.cat([G(raw[i:i + 512].to(device)).cpu() for i in range(0, len(raw), 512)])
            if not kw:
                d_acc.append(d_accuracy(t.logs))
                acc.setdefault("raw synthetic (fonts)", []).append(
                    accuracy(train_classifier(raw, synthetic.y, seed, device, epochs), x_test, y_test))
                from ganforge.viz import save_columns
                save_columns({"synthetic": raw[:16], "refined": refined[:16]}, work / f"simgan-pairs-{seed}.png")
            acc.setdefault(name, []).append(
                accuracy(train_classifier(refined, synthetic.y, seed, device, epochs), x_test, y_test))
            shift.setdefault(name, []).append((refined - raw).abs().mean().item())
    rows = [{"classifier trained on": name, "accuracy on real digits (test)": mean_std(v), "seeds": len(v),
             "mean abs(R(x) - x)": mean_std(shift[name]) if name in shift else "0"} for name, v in acc.items()]
    flat = [a for run in d_acc for a in run]
    rows.append({"classifier trained on": "(D) accuracy on real vs refined, over training",
                 "accuracy on real digits (test)": f"mean {statistics.mean(flat):.3f}, above 0.6 in "
                 f"{sum(a > 0.6 for a in flat) / len(flat):.0%} of log rows", "seeds": len(d_acc),
                 "mean abs(R(x) - x)": f"{rec.cfg.steps} steps, {round(secs)} s per refiner"})
    emit(args, "simgan", rows, ["classifier trained on", "accuracy on real digits (test)", "seeds",
                                "mean abs(R(x) - x)"])


# -- ssgan ------------------------------------------------------------------------------------------------------
def bench_ssgan(args, work: Path) -> None:
    labels = [int(k) for k in args.labels.split(",")]
    quick = {"steps": 20} if args.quick else {}
    rows = []
    for k in labels:
        row = {"labels per class": k}
        for name, unsup in (("supervised-only error", False), ("ssgan error", True)):
            errs = []
            for s in args.seeds:
                rec, t, _ = fit("ssgan", args, work / f"ssgan-{k}-{unsup}-{s}", labels_per_class=k, unsupervised=unsup,
                                seed=s, **quick)
                errs.append(rec.test_error(t.nets["D"]))
            row[name] = mean_std(errs)
        row["seeds"] = len(args.seeds)
        rows.append(row)
    emit(args, "ssgan", rows, ["labels per class", "supervised-only error", "ssgan error", "seeds"])


# -- dann -------------------------------------------------------------------------------------------------------
def bench_dann(args, work: Path) -> None:
    quick = {"steps": 20} if args.quick else {}
    rows = []
    for name, adapt in (("source only (fonts)", False), ("DANN", True)):
        res = []
        for s in args.seeds:
            rec, t, _ = fit("dann", args, work / f"dann-{adapt}-{s}", adapt=adapt, seed=s, **quick)
            res.append(rec.test_accuracy(t.nets))
        rows.append({"training": name, "target accuracy (real digits, test)": mean_std(r["target"] for r in res),
                     "source accuracy (fonts, test)": mean_std(r["source"] for r in res), "seeds": len(res)})
    emit(args, "dann", rows, ["training", "target accuracy (real digits, test)", "source accuracy (fonts, test)",
                              "seeds"])


# -- inversion --------------------------------------------------------------------------------------------------
def bench_invert(args, work: Path) -> None:
    from ganforge.commands.invert import project

    quick = {"steps": 20} if args.quick else {}
    out = work / "dcgan-invert"
    kw = {"device": args.device, "sample_every": 10 ** 9, "checkpoint_every": 10 ** 9, "log_every": 10 ** 9, **quick,
          **args.set}
    if args.steps:
        kw["steps"] = args.steps
    ganforge.train("dcgan", preset="digits", out=out, progress=False, **kw)
    g = ganforge.load(out)
    if args.device != "cpu" and torch.cuda.is_available():
        g.to("cuda")
    from ganforge.data import resolve
    n = 32 if args.quick else 200
    test, _ = resolve("digits", split="test", resolution=g.info.shape[-1])
    x = test.batch(torch.arange(n))["real"]
    steps = 20 if args.quick else 500
    plain = project(g, x, steps=steps, restarts=16)
    feat = project(g, x, steps=steps, restarts=16, feature_weight=1.0)
    rows = [{"latent": "random z (mean over 16 draws)", "MSE on held-out digits": f"{plain['random_error'].mean():.4f}"},
            {"latent": "best of 16 random z", "MSE on held-out digits": f"{plain['initial_error'].mean():.4f}"},
            {"latent": f"inverted z ({steps} Adam steps, pixel loss)", "MSE on held-out digits": f"{plain['error'].mean():.4f}"},
            {"latent": f"inverted z ({steps} steps, pixel + feature loss)", "MSE on held-out digits": f"{feat['error'].mean():.4f}"}]
    from ganforge.viz import save_grid
    save_grid(torch.stack([x[:16], plain["reconstruction"][:16].cpu()], 1).flatten(0, 1), work / "inversion.png", nrow=8)
    emit(args, "invert", rows, ["latent", "MSE on held-out digits"])


# -- GAN data augmentation ----------------------------------------------------------------------------------------
def bench_augment(args, work: Path) -> None:
    from ganforge.data.base import Data
    from ganforge.metrics.digits import resize_to_digits

    per_class = args.per_class
    quick = {"steps": 20} if args.quick else {}
    cls, cfg = make_config("cgan", overrides={"device": args.device})
    full, info = load_data(cfg)                     # digits at 16x16 (the cgan preset)
    g = torch.Generator().manual_seed(0)
    pick = torch.cat([(full.y == k).nonzero().flatten()[torch.randperm(int((full.y == k).sum()), generator=g)[:per_class]]
                      for k in range(10)])
    few = Data(full.x[pick], full.y[pick])
    rec, t, secs = fit("cgan", args, work / "cgan-few", dataset=few, **quick)
    G = t.sampler().eval()
    device = next(G.parameters()).device
    n_fake = 10 if args.quick else 100              # per class
    labels = torch.arange(10).repeat_interleave(n_fake)
    with torch.no_grad():
        fake = rec.generate(G, rec.noise(len(labels), "cpu", torch.Generator().manual_seed(5)).to(device),
                            labels.to(device)).float().cpu()
    real = few.batch(torch.arange(len(few)))
    x_real, y_real = resize_to_digits(real["real"]), real["label"]
    x_fake = resize_to_digits(fake)
    x_test, y_test = digits_split("test")
    epochs = 2 if args.quick else 60
    rows = []
    for name, x, y in (("real only", x_real, y_real),
                       (f"real + {len(labels)} cGAN samples", torch.cat([x_real, x_fake]), torch.cat([y_real, labels]))):
        accs = [accuracy(train_classifier(x, y, s, device, epochs), x_test, y_test) for s in args.seeds]
        rows.append({"training set": name, "test accuracy": mean_std(accs), "real images": len(y_real),
                     "seeds": len(accs)})
    emit(args, "augment", rows, ["training set", "real images", "test accuracy", "seeds"])


FAMILIES = {"text2image": bench_text2image, "simgan": bench_simgan, "ssgan": bench_ssgan, "dann": bench_dann,
            "invert": bench_invert, "augment": bench_augment}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", choices=[*FAMILIES, "all"])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=0, help="override every training's steps (0 = the presets')")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the repeated trainings / classifiers")
    p.add_argument("--variants", default="", help="text2image: comma list of GAN,GAN-CLS,GAN-INT,GAN-INT-CLS")
    p.add_argument("--labels", default="5,10,20", help="ssgan: labels per class")
    p.add_argument("--per-class", type=int, default=20, help="augment: real images per class")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs (numbers meaningless)")
    p.add_argument("--json", help="append result rows to this JSON-lines file")
    p.add_argument("--work", help="folder for runs and pictures (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the family's trainings (repeatable), e.g. --set reg_weight=0.1")
    args = p.parse_args(argv)
    from ganforge.config import parse_overrides
    args.set = parse_overrides(args.set)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in (FAMILIES if args.family == "all" else [args.family]):
            t0 = time.perf_counter()
            FAMILIES[name](args, work)
            print(f"({name}: {time.perf_counter() - t0:.0f} s on {args.device})", flush=True)


if __name__ == "__main__":
    main()
