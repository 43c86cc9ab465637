"""Numerics that hold on every machine (issue 12): what stays fp32 under autocast, the oneDNN padding-tap guard,
every family finite under bf16 and fp32, and a thread count / precision that no background load can change
and that a resume reuses from its checkpoint."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import ganforge
from ganforge import losses as L
from ganforge.api import _recipes, load_data, make_config
from ganforge.precision import guard_convs, padding_only_tap, wide
from ganforge.training import hardware as H
from ganforge.training.trainer import Trainer

NAMES = sorted(_recipes())


# -- what stays fp32 --------------------------------------------------------------------------------------------
def test_wide_promotes_half_types_only():
    assert wide(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert wide(torch.ones(2, dtype=torch.float16)).dtype == torch.float32
    x64 = torch.ones(2, dtype=torch.float64)
    assert wide(x64) is x64 and wide(torch.arange(3)).dtype == torch.int64 and wide(None) is None


@pytest.mark.parametrize("name", sorted(L.ADVERSARIAL))
def test_losses_compute_in_fp32_from_bf16_logits(name):
    """A loss over bf16 logits equals the fp32 loss of the same (bf16-representable) values, and is fp32:
    computed in bf16 it would be rounded to 8 significant bits."""
    g = torch.Generator().manual_seed(0)
    real = (torch.randn(4096, generator=g) * 3).to(torch.bfloat16)
    fake = (torch.randn(4096, generator=g) * 3).to(torch.bfloat16)
    d = L.ADVERSARIAL[name].d(real_logits=real, fake_logits=fake)
    assert d.dtype == torch.float32
    assert torch.equal(d, L.ADVERSARIAL[name].d(real_logits=real.float(), fake_logits=fake.float()))
    gl = L.ADVERSARIAL[name].g(fake_logits=fake, real_logits=real)
    assert gl.dtype == torch.float32 and torch.equal(gl, L.ADVERSARIAL[name].g(fake_logits=fake.float(),
                                                                              real_logits=real.float()))
    assert L.mse(fake=fake, target=real).dtype == L.l1(fake=fake, target=real).dtype == torch.float32


# -- the padding-tap guard (oneDNN's AMX bf16 backward-weights defect) -------------------------------------------
@pytest.mark.parametrize("size,kernel,stride,pad,want", [
    (1, 3, 1, 1, True),     # 3x3 conv on a 1x1 map (SRGAN D at resolution 8): the outer taps see only padding
    (2, 3, 1, 1, False),    # every tap meets a pixel
    (2, 4, 2, 1, True),     # pix2pix's innermost U-Net conv: 2x2 -> 1x1
    (4, 4, 2, 1, False),
    (2, 9, 1, 4, True),     # SRResNet's 9x9 head on a 2x2 input
    (4, 4, 1, 0, False),    # DCGAN's last valid 4x4 conv on 4x4
])
def test_padding_only_tap(size, kernel, stride, pad, want):
    assert padding_only_tap(size, kernel, stride, pad, 1) is want


def test_guarded_conv_runs_in_fp32_only_where_a_tap_meets_only_padding():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, 1, 1))
    assert guard_convs(net) == 1 and guard_convs(net) == 0          # idempotent
    ema = copy.deepcopy(net)                                         # EMA copies keep the guard, on their own
    for m in (net, ema):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert m(torch.randn(2, 4, 1, 1)).dtype == torch.float32  # degenerate: fp32
            assert m(torch.randn(2, 4, 4, 4)).dtype == torch.bfloat16
        assert m(torch.randn(2, 4, 1, 1)).dtype == torch.float32     # no autocast: unchanged
    x = torch.randn(8, 4, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x).square().sum().backward()
    g = net[0].weight.grad
    assert torch.isfinite(g).all()
    border = torch.ones(3, 3, dtype=torch.bool)
    border[1, 1] = False
    assert torch.equal(g[:, :, border], torch.zeros_like(g[:, :, border]))   # padding-only taps: exactly 0


def test_trainer_guards_the_degenerate_convs_under_bf16(tmp_path):
    kw = {**_recipes()["srgan"].smoke, "steps": 4, "batch_size": 8, "log_every": 1, "sample_every": 100,
          "checkpoint_every": 100}
    for precision, guarded in (("bf16", True), ("fp32", False)):
        cls, cfg = make_config("srgan", None, {**kw, "precision": precision})
        data, info = load_data(cfg)
        t = Trainer(cls(cfg, info), data, tmp_path / precision, progress=False)
        for _ in range(4):
            t.train_step()
        last = t.nets["D"].features[-3]                               # the last conv: on a 1x1 map at res 8
        assert isinstance(last, nn.Conv2d)
        assert ("_padding_only" in last.__dict__) is guarded
        if guarded:       # on its 1x1 map the conv takes conv_grad's GEMM route: no fp32 fallback was needed
            assert "_native" in last.__dict__ and last._padding_only == {}
        assert all(torch.isfinite(p).all() for p in t.nets["D"].parameters())


def _finite_run(name, precision, tmp_path, steps=24):
    kw = {**_recipes()[name].smoke, "steps": steps, "batch_size": 8, "log_every": 1, "sample_every": 1000,
          "checkpoint_every": 1000, "num_samples": 8, "seed": 3, "precision": precision}
    cls, cfg = make_config(name, None, kw)
    data, info = load_data(cfg)
    t = Trainer(cls(cfg, info), data, tmp_path / precision, progress=False)
    rows = []
    for _ in range(steps):
        rows.append({k: v.item() for k, v in t.train_step().items()})
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_every_family_is_finite_under_bf16_and_fp32(name, tmp_path):
    """A few dozen steps of each recipe's smoke configuration from the same seed under both precisions: every
    logged number finite in both (bf16 must never be the reason a run diverges)."""
    for precision in ("bf16", "fp32"):
        rows = _finite_run(name, precision, tmp_path)
        bad = [(i, k, v) for i, row in enumerate(rows) for k, v in row.items() if not math.isfinite(v)]
        assert not bad, f"{name} under {precision}: {bad[:5]}"


# -- CPU bf16 detection override ---------------------------------------------------------------------------------
def test_cpu_bf16_detection_can_be_forced(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(H.CPU_BF16_ENV, "0")
    assert H.cpu_bf16_feature() == "" and H.pick_precision("auto", cpu, conv=True)[0] == "fp32"
    monkeypatch.setenv(H.CPU_BF16_ENV, "1")
    assert H.pick_precision("auto", cpu, conv=True) == ("bf16", "auto: CPU with GANFORGE_CPU_BF16=1, "
                                                                "convolutional nets")
    monkeypatch.delenv(H.CPU_BF16_ENV)
    monkeypatch.setattr(H, "_cpu_flags", lambda: {"fpu", "amx_bf16"})
    assert H.cpu_bf16_feature() == "amx_bf16"
    monkeypatch.setattr(H, "_cpu_flags", lambda: {"fpu"})
    assert H.cpu_bf16_feature() == ""


# -- thread count and resume -------------------------------------------------------------------------------------
TINY = dict(resolution=8, batch_size=8, g_width=8, d_width=8, num_samples=8, sample_every=100, log_every=1)


def _weights(run, step):
    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / "weights.safetensors"))


def test_resume_is_bit_identical_while_the_machine_is_busy(tmp_path, monkeypatch, capsys):
    """The issue's reproduction: a resume started while other processes keep the cores busy used to pick
    fewer threads than the straight run, and so computed different bits."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(H, "TORCH_DEFAULT_THREADS", 2)       # the suite runs at 1 thread (conftest)
    monkeypatch.setattr(H, "usable_cores", lambda: 2)
    kw = dict(TINY, steps=6, checkpoint_every=3, seed=7)
    before = torch.get_num_threads()
    try:
        ganforge.train("dcgan", out=tmp_path / "A", progress=False, **kw)
        ganforge.train("dcgan", out=tmp_path / "B", progress=False, stop_at=3, **kw)
        monkeypatch.setattr(H, "other_runnable_tasks", lambda *a, **k: 64)          # a busy laptop
        s = ganforge.resume(tmp_path / "B", progress=True)  # the start-up line reads the probe: advice only
    finally:
        torch.set_num_threads(before)
    assert "64 other busy tasks" in capsys.readouterr().out and s["performance"]["threads"] == 2
    assert s["performance"]["resume_differs"] == []
    a, b = _weights(tmp_path / "A", 6), _weights(tmp_path / "B", 6)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "B" / "checkpoints" / "step-000006" / "meta.json").read_text())
    assert meta["numerics"]["threads"] == 2
    assert set(meta["numerics"]) >= {"precision", "threads", "channels_last", "compile", "torch", "hardware"}


def test_resume_reuses_the_checkpoints_automatic_choices(tmp_path, monkeypatch, capsys):
    """A checkpoint computed with 3 threads and fp32 (say, on another machine) continues with 3 threads and fp32
    when the config left them automatic; what cannot be reused (another torch) is named in one line."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run = tmp_path / "r"
    ganforge.train("dcgan", out=run, progress=False, stop_at=2, **dict(TINY, steps=4, checkpoint_every=2))
    meta_path = run / "checkpoints" / "step-000002" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["numerics"].update(threads=3, precision="fp32", torch="1.0.0")
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setenv(H.CPU_BF16_ENV, "1")                     # auto would now pick bf16 for this conv net
    before = torch.get_num_threads()
    try:
        s = ganforge.resume(run, progress=False)
        perf = s["performance"]
        assert (perf["threads"], perf["threads_reason"]) == (3, "kept from the resumed checkpoint")
        assert (s["precision"], perf["precision_reason"]) == ("fp32", "auto, kept from the resumed checkpoint")
    finally:
        torch.set_num_threads(before)
    assert perf["resume_differs"] == [f"torch 1.0.0 -> {torch.__version__}"]
    err = capsys.readouterr().err
    assert err.count("not bit-identical") == 1 and "torch 1.0.0 -> " in err
