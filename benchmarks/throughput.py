"""Training throughput: the pytorch/examples DCGAN loop vs ganforge's dcgan, in one process run.

The reference is the DCGAN training loop of the PyTorch tutorial / pytorch/examples (Radford et al. 2015,
arXiv:1511.06434) written as a user would: nn.Sequential generator and discriminator with ngf = ndf = 64,
weights_init, BCELoss after a Sigmoid, Adam(2e-4, betas=(0.5, 0.999)), a shuffling DataLoader, fp32 and the
default memory format. ganforge runs `dcgan` with the same architecture, batch size and data (scikit-learn's
digits upsampled to the resolution) through its Trainer with its defaults (precision=auto, ...). Both run at
the same number of threads (printed), interleaved round by round (ABBA order) so that other processes on a
shared machine slow both alike; the speed-up is the median of the per-round ratios.

When torch's default thread count differs from the one used (ganforge leaves cores that other processes
keep busy), the reference is also timed at torch's default, as a tutorial script runs it.

Also printed: FLOPs per step (torch.utils.flop_counter) and the achieved FLOP/s against a measured matmul
peak (bf16 and fp32, same threads); peak memory per training step (CPU: peak RSS above the resident set,
reset through /proc/self/clear_refs; GPU: torch.cuda.max_memory_allocated); sampling throughput; and the
throughput of the two FID feature extractors (digits CNN, Inception-v3) with their peak memory per batch,
which bounds the memory of a streamed 50k-sample evaluation.

    python benchmarks/throughput.py                       # 32x32 and 64x64 at batch 64, CPU
    python benchmarks/throughput.py --res 32 --rounds 3   # quicker
    python benchmarks/throughput.py --device cuda --precision bf16 --res 32 64
    python benchmarks/throughput.py --fid-check --seeds 0 1 2   # digits FID: fp32 vs auto precision
    python benchmarks/throughput.py --fid-check --fid-compare conv_grad --fid-res 32   # oneDNN vs GEMM wgrad
    python benchmarks/throughput.py --features-only --threads 1 # FID extractors: plain vs fused Inception-v3
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset


# ---------------------------------------------------------------------------------------------------------------
# The reference, as written from the PyTorch DCGAN tutorial (64x64: the tutorial's exact layers; 32x32: the
# same design with the first block removed, as a user adapting it to smaller images would do).
# ---------------------------------------------------------------------------------------------------------------
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class RefGenerator(nn.Module):
    def __init__(self, nz, ngf, nc, image_size):
        super().__init__()
        mult = image_size // 8          # 64x64: ngf*8 at 4x4, as in the tutorial; 32x32: ngf*4
        layers = [nn.ConvTranspose2d(nz, ngf * mult, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        while mult > 1:
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf, nc, image_size):
        super().__init__()
        layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        while mult < image_size // 8:
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult * 2), nn.LeakyReLU(0.2, inplace=True)]
            mult *= 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, input):
        return self.main(input)


class Reference:
    """One object per resolution: nets, optimizers, dataloader; `step()` is one iteration of the tutorial."""

    def __init__(self, images: torch.Tensor, batch_size: int, device: torch.device, nz: int = 100):
        self.device, self.nz, self.batch_size = device, nz, batch_size
        image_size, nc = images.shape[-1], images.shape[1]
        self.netG = RefGenerator(nz, 64, nc, image_size).to(device)
        self.netG.apply(weights_init)
        self.netD = RefDiscriminator(64, nc, image_size).to(device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.dataloader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True)
        self._it = iter(self.dataloader)

    def _next(self):
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.dataloader)
            return next(self._it)

    def step(self):
        real_label, fake_label = 1.0, 0.0
        data = self._next()
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        real_cpu = data[0].to(self.device)
        b_size = real_cpu.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float, device=self.device)
        output = self.netD(real_cpu).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        noise = torch.randn(b_size, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(fake_label)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(real_label)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        return errD_real.item() + errD_fake.item(), errG.item()   # the tutorial logs these every iteration


# ---------------------------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(key: str) -> int:
    return int(re.search(key + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_memory(fn, device: torch.device) -> tuple[float, str]:
    """Peak memory of one call of fn in MiB above what was held before it, and how it was measured."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20, "cuda allocated"
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)            # give cached free blocks back, so RSS = live data
        base = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")       # reset the peak-RSS counter (Linux >= 4.0)
        fn()
        return (_status_kib("VmHWM") - base) / 1024, "peak RSS"
    except (OSError, AttributeError):
        fn()
        return float("nan"), "unavailable"


def matmul_peak(dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...], reps: int = 15) -> float:
    """Best FLOP/s of n x n x n matmuls (2 n^3 FLOPs) over a few sizes: on a CPU the best size is the one
    whose operands fit the caches (512 here), on a GPU the largest."""
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        for _ in range(reps):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            best_rate = max(best_rate, 2 * n ** 3 / (time.perf_counter() - t))
    return best_rate


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


OP_GROUPS = (("conv forward", ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution"),
              ("convolution", "_convolution")),
             ("conv backward", ("aten::convolution_backward",), ("convolution_backward",)),
             ("matmul (Linear, conv_grad's GEMMs)", ("aten::mm", "aten::addmm", "aten::bmm"), ("mm", "addmm", "bmm")),
             ("copies and casts", ("aten::copy_", "aten::_to_copy"), ()),
             ("BatchNorm", ("aten::native_batch_norm", "aten::native_batch_norm_backward"), ()),
             ("activations", ("aten::leaky_relu_", "aten::leaky_relu_backward", "aten::threshold_backward",
                              "aten::clamp_min_", "aten::tanh", "aten::tanh_backward"), ()),
             ("optimizer", ("aten::_fused_adam_",), ()))


def op_table(fn, steps: int, peak: float) -> None:
    """Where a CPU step's time goes, by op group (torch.profiler self time) and how fast each group computes
    (torch.utils.flop_counter FLOPs over that time, against the bf16 matmul peak): the measured reason a step
    stays below the peak."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    flops = {str(k).split(".")[-1]: v for k, v in counter.get_flop_counts()["Global"].items()}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    self_us = {e.key: e.self_cpu_time_total / steps for e in prof.key_averages()}
    total = sum(self_us.values())
    rest = total
    print(f"  ganforge step by op group (torch.profiler self time, {steps} steps; FLOPs by torch.utils.flop_counter):")
    for name, ops, flop_ops in OP_GROUPS:
        t = sum(self_us.get(o, 0.0) for o in ops)
        rest -= t
        f = sum(flops.get(o, 0) for o in flop_ops)
        speed = f / (t * 1e-6) if f and t else 0.0
        rate = f"{f / 1e9:6.2f} GFLOP, {speed / 1e9:7.1f} GFLOP/s = {100 * speed / peak:3.0f}% of the bf16 peak" \
            if speed else ""
        print(f"    {name:36s} {100 * t / total:5.1f}%  {t / 1e3:7.2f} ms  {rate}")
    print(f"    {'everything else':36s} {100 * rest / total:5.1f}%  {rest / 1e3:7.2f} ms")


def timed(fn, k: int, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(k):
        fn()
    sync(device)
    return time.perf_counter() - t


def fmt_flops(x: float) -> str:
    return f"{x / 1e12:.2f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.1f} GFLOP/s"


def ganforge_trainer(res: int, batch: int, device: str, precision: str, out: Path, extra: dict):
    from ganforge.api import load_data, make_config
    from ganforge.training.trainer import Trainer

    overrides = {"resolution": res, "batch_size": batch, "device": device, "precision": precision,
                 "sample_every": 10**9, "checkpoint_every": 10**9, "log_every": 10**9, "g_width": 64,
                 "d_width": 64, **extra}
    cls, cfg = make_config("dcgan", None, overrides)
    data, info = load_data(cfg)
    return Trainer(cls(cfg, info), data, out, progress=False), data


# ---------------------------------------------------------------------------------------------------------------
def bench_training(res: int, a, device: torch.device, peaks: dict, tmp: Path) -> dict:
    trainer, data = ganforge_trainer(res, a.batch, a.device, a.precision, tmp / f"run{res}", a.extra)
    images = data.x.float().div(127.5).sub(1.0)            # the same digits, as float tensors in [-1, 1]
    ref = Reference(images, a.batch, device)
    step_ref, step_gf = ref.step, trainer.train_step
    loops = [("ref", step_ref, a.threads), ("ganforge", step_gf, a.threads)]
    if a.default_threads != a.threads:        # also as a tutorial user runs it: torch's default thread count
        loops.append(("ref_default", step_ref, a.default_threads))
    for name, fn, threads in loops + loops:   # warm-up: allocator, oneDNN primitive caches, thread pools
        torch.set_num_threads(threads)
        fn()
    rates: dict[str, list[float]] = {name: [] for name, _, _ in loops}
    for r in range(a.rounds):
        for name, fn, threads in (loops if r % 2 == 0 else loops[::-1]):
            torch.set_num_threads(threads)
            rates[name].append(a.batch * a.steps / timed(fn, a.steps, device))
    torch.set_num_threads(a.threads)
    per_round = lambda key: [g / r for g, r in zip(rates["ganforge"], rates[key])]   # noqa: E731
    ratio = statistics.median(per_round("ref"))
    out = {"res": res, "precision": trainer.precision,
           "ref": statistics.median(rates["ref"]), "ganforge": statistics.median(rates["ganforge"]),
           "ratio": ratio, "ratios": per_round("ref")}
    if "ref_default" in rates:
        out["ref_default"] = statistics.median(rates["ref_default"])
        out["ratio_default"] = statistics.median(per_round("ref_default"))
    out["flops_ref"], out["flops_gf"] = count_flops(step_ref), count_flops(step_gf)
    out["mem_ref"], how = peak_memory(step_ref, device)
    out["mem_gf"], _ = peak_memory(step_gf, device)
    out["mem_how"] = how

    print(f"\n== {res}x{res}, batch {a.batch}, {a.threads} thread(s), {a.rounds} rounds x {a.steps} steps ==")
    print(f"  reference (pytorch/examples, fp32) : {out['ref']:8.1f} img/s")
    print(f"  ganforge dcgan ({trainer.precision:4s})          : {out['ganforge']:8.1f} img/s")
    print(f"  speed-up ganforge / reference      : {ratio:8.2f}x  (per-round: "
          + ", ".join(f"{x:.2f}" for x in out["ratios"]) + ")")
    if "ref_default" in out:
        print(f"  reference at torch's default {a.default_threads} threads: {out['ref_default']:8.1f} img/s -> "
              f"ganforge ({a.threads} thread{'s' * (a.threads > 1)}, its own choice) is {out['ratio_default']:.2f}x")
    for name, flops, rate in (("reference", out["flops_ref"], out["ref"]), ("ganforge", out["flops_gf"], out["ganforge"])):
        achieved = flops * rate / a.batch
        print(f"  {name:9s}: {flops / 1e9:6.2f} GFLOP/step, achieved {fmt_flops(achieved)} = "
              f"{100 * achieved / peaks['bf16']:.0f}% of the bf16 matmul peak, "
              f"{100 * achieved / peaks['fp32']:.0f}% of fp32")
    # the roofline: ganforge's FLOPs per step run at the measured bf16 matmul peak (no conv reaches it)
    out["bound"] = peaks["bf16"] / out["flops_gf"] * a.batch
    print(f"  ceiling: ganforge's FLOPs/step at 100% of the bf16 matmul peak = {out['bound']:.0f} img/s = "
          f"{out['bound'] / out['ref']:.2f}x the reference")
    print(f"  peak memory per step ({how}): reference {out['mem_ref']:.0f} MiB, ganforge {out['mem_gf']:.0f} MiB")
    if device.type == "cpu":
        op_table(step_gf, 3, peaks["bf16"])

    # sampling: the trained-model path (eval mode, no grad), fp32 and the trainer's precision
    G = trainer.sampler().eval()
    z = trainer.recipe.noise(a.sample_batch, device)
    for prec in dict.fromkeys(("fp32", trainer.precision)):
        ctx = (torch.autocast(device.type, dtype=torch.bfloat16 if prec == "bf16" else torch.float16)
               if prec != "fp32" else contextlib.nullcontext())
        with torch.no_grad(), ctx:
            G(z)
            k = max(1, a.steps)
            rate = a.sample_batch * k / timed(lambda: G(z), k, device)
        print(f"  sampling ({prec}, batch {a.sample_batch}): {rate:9.0f} img/s")
        out[f"sample_{prec}"] = rate
    G.train()
    return out


def bench_features(a, device: torch.device, res: int, peaks: dict) -> None:
    from ganforge.metrics.features import load_extractor

    print(f"\n== FID feature extraction ({res}x{res} grayscale inputs) ==")
    digits = load_extractor("digits", device=device)
    x = torch.rand(digits.default_batch, 1, res, res, device=device) * 2 - 1
    digits(x)
    k = 5
    rate = x.shape[0] * k / timed(lambda: digits(x), k, device)
    mem, how = peak_memory(lambda: digits(x), device)
    print(f"  digits CNN (batch {x.shape[0]}): {rate:10.0f} img/s; peak {mem:.0f} MiB per batch ({how}); "
          f"50k samples ~ {50_000 / rate:.1f} s")
    inception_paths(a, device, res, peaks)


def inception_paths(a, device: torch.device, res: int, peaks: dict) -> None:
    """Inception-v3 in the fp32 protocol: the plain model (the path before issue 14: NCHW, BatchNorm after
    every conv) against the extractor's fused copy (inception.fused), interleaved rounds (ABBA), with FLOPs
    per image against the fp32 matmul peak and the fused path's op table."""
    from torch.profiler import profile
    from ganforge.metrics.inception import InceptionFID, fused

    torch.manual_seed(0)
    plain = InceptionFID().to(device)                   # speed does not depend on the weights' values
    for m in plain.modules():                           # non-trivial BN statistics, so folding is not a no-op
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.running_mean.normal_(0, 0.1)
    fast = fused(plain)
    batch = a.inception_batch
    xi = ((torch.rand(batch, 1, res, res, device=device) * 255).round() / 127.5) - 1
    paths = [("plain (before)", lambda: plain(xi)), ("fused (extractor)", lambda: fast(xi))]
    with torch.no_grad():
        want, got = plain(xi)["pool"], fast(xi)["pool"]
        rel = ((got - want).abs().max() / want.abs().max()).item()
        flops = count_flops(lambda: plain(xi)) / batch
        k = 1 if device.type == "cpu" else 10
        rates: dict[str, list[float]] = {name: [] for name, _ in paths}
        for r in range(a.inception_rounds):
            for name, fn in (paths if r % 2 == 0 else paths[::-1]):
                rates[name].append(batch * k / timed(fn, k, device))
        mem, how = peak_memory(lambda: fast(xi), device)
        with profile() as prof:
            fast(xi)
    ratios = [f / p for f, p in zip(rates["fused (extractor)"], rates["plain (before)"])]
    print(f"  Inception-v3 fp32, batch {batch}, resized to 299, {a.inception_rounds} interleaved rounds "
          f"({flops / 1e9:.2f} GFLOP per image):")
    for name, _ in paths:
        rate = statistics.median(rates[name])
        print(f"    {name:18s}: {rate:7.1f} img/s = {fmt_flops(rate * flops)} = "
              f"{100 * rate * flops / peaks['fp32']:.0f}% of the fp32 matmul peak; 50k samples ~ "
              f"{50_000 / rate / 60:.1f} min")
    print(f"    speed-up fused / plain: {statistics.median(ratios):.2f}x (per-round: "
          + ", ".join(f"{x:.2f}" for x in ratios) + f"); features max |diff| / max |plain| = {rel:.1e}")
    print(f"    ceiling: these FLOPs at 100% of the fp32 matmul peak = {peaks['fp32'] / flops:.1f} img/s = "
          f"{peaks['fp32'] / flops / statistics.median(rates['plain (before)']):.2f}x the plain path")
    print(f"    fused path, peak {mem:.0f} MiB per batch ({how}); features 50k x 2048 fp32 = 391 MiB; its ops "
          f"(self CPU time of one batch):")
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]:
        extra = ""
        if e.key == "aten::mkldnn_convolution":
            conv_flops = flops * batch * 0.995          # all but the fc layer's share of the FLOPs
            extra = (f"; {fmt_flops(conv_flops / (e.self_cpu_time_total / 1e6))} = "
                     f"{100 * conv_flops / (e.self_cpu_time_total / 1e6) / peaks['fp32']:.0f}% of the fp32 peak")
        print(f"      {e.key:32s} {100 * e.self_cpu_time_total / total:5.1f}%  {e.count:4d} calls{extra}")


def fid_check(a) -> None:
    """Short `ganforge train` runs, several seeds, digits FID of each: at fp32 and at auto precision
    (--fid-compare precision), or at auto precision with oneDNN's weight gradients (the earlier default) and
    with conv_grad's GEMM route (--fid-compare conv_grad)."""
    import ganforge
    import ganforge.conv_grad as conv_grad
    from ganforge.data import resolve
    from ganforge.metrics.digits import load_digits_evaluator
    from ganforge.metrics.stats import fid

    evaluator = load_digits_evaluator()
    train, _ = resolve("digits", split="train", resolution=16)

    def feats(x):
        with torch.no_grad():
            return torch.cat([evaluator.features(b) for b in x.split(512)]).double().numpy()

    ref = feats(train.x.float().div(127.5).sub(1.0))
    results: dict[str, list[float]] = {}
    rule = conv_grad.gemm_wins
    variants = ([("fp32", "fp32", rule), ("auto", "auto", rule)] if a.fid_compare == "precision" else
                [("onednn", "auto", lambda *_: False), ("gemm", "auto", rule)])
    extra = {"resolution": a.fid_res} if a.fid_res else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, precision, wins in variants:
            for seed in a.seeds:
                t = time.perf_counter()
                conv_grad.gemm_wins = wins
                try:
                    s = ganforge.train("dcgan", preset="digits", out=Path(tmp) / f"{name}-{seed}", progress=False,
                                       seed=seed, precision=precision, steps=a.fid_steps, sample_every=10**9,
                                       **extra)
                finally:
                    conv_grad.gemm_wins = rule
                g = ganforge.load(s["run_dir"])
                value = fid(feats(g.sample(1000, seed=123)), ref)
                results.setdefault(f"{name} ({s['precision']})", []).append(value)
                print(f"  {name:6s} precision={precision:4s} -> {s['precision']:4s} seed={seed}: digits FID "
                      f"{value:7.2f} ({time.perf_counter() - t:.0f} s)", flush=True)
    print(f"\n== digits FID after {a.fid_steps} steps (1,000 samples vs the 1,437 training images) ==")
    for k, v in results.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"  {k:12s}: mean {statistics.mean(v):6.2f}  sd {sd:5.2f}  (" + ", ".join(f"{x:.2f}" for x in v) + ")")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[32, 64])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per loop")
    p.add_argument("--steps", type=int, default=3, help="training steps per round")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both loops; 0 = ganforge's choice")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="auto", help="ganforge's precision (the reference is always fp32)")
    p.add_argument("--sample-batch", type=int, default=256)
    p.add_argument("--inception-batch", type=int, default=0, help="0 = 16 on CPU, 200 on GPU")
    p.add_argument("--inception-rounds", type=int, default=4, help="interleaved rounds, plain vs fused Inception")
    p.add_argument("--skip-features", action="store_true")
    p.add_argument("--features-only", action="store_true", help="only the feature extractors")
    p.add_argument("--fid-check", action="store_true", help="only: digits FID of fp32 vs auto-precision runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fid-steps", type=int, default=1500)
    p.add_argument("--fid-compare", choices=["precision", "conv_grad"], default="precision")
    p.add_argument("--fid-res", type=int, default=0, help="dcgan's resolution (0: the digits preset's)")
    p.add_argument("extra", nargs="*", help="key=value config overrides for ganforge's dcgan (e.g. compile=true)")
    a = p.parse_args(argv)
    from ganforge.config import parse_overrides
    a.extra = parse_overrides(a.extra)
    a.default_threads = torch.get_num_threads()      # what a script that never sets it runs with
    device = torch.device(a.device)
    if a.threads <= 0:
        from ganforge.training.hardware import pick_threads
        a.threads = pick_threads(0, device)[0] or 1
    torch.set_num_threads(a.threads)
    if a.fid_check:
        fid_check(a)
        return 0
    a.inception_batch = a.inception_batch or (16 if device.type == "cpu" else 200)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f" ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
          + f", threads {a.threads}")
    sizes = (512, 1024, 2048) if device.type == "cpu" else (4096, 8192)
    peaks = {"bf16": matmul_peak(torch.bfloat16, device, sizes), "fp32": matmul_peak(torch.float32, device, sizes)}
    print(f"matmul peak (best of n = {', '.join(map(str, sizes))}): bf16 {fmt_flops(peaks['bf16'])}, "
          f"fp32 {fmt_flops(peaks['fp32'])}")
    if a.features_only:
        bench_features(a, device, a.res[0], peaks)
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in a.res:
            torch.manual_seed(0)
            results.append(bench_training(res, a, device, peaks, Path(tmp)))
    if not a.skip_features:
        bench_features(a, device, a.res[0], peaks)
    print(f"\n| resolution | reference img/s (fp32, {a.threads} thr.) | ganforge img/s | precision | speed-up | "
          f"ceiling at the bf16 peak |"
          + (f" reference at default {a.default_threads} thr. | speed-up vs that |" if "ref_default" in results[0] else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if "ref_default" in results[0] else ""))
    for r in results:
        print(f"| {r['res']}x{r['res']} | {r['ref']:.1f} | {r['ganforge']:.1f} | {r['precision']} | {r['ratio']:.2f}x | "
              f"{r['bound'] / r['ref']:.2f}x |" + (f" {r['ref_default']:.1f} | {r['ratio_default']:.2f}x |" if "ref_default" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
