"""Precision and speed settings of the trainer: auto precision rules, gradient penalties under bf16 autocast vs
fp32, channels_last, fused optimizers, CPU thread choice, opt-in torch.compile, the printed effective batch."""
from __future__ import annotations


import pytest
import torch
from torch import nn

import ganforge
from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.regularizers import gradient_penalty, r1_penalty
from ganforge.training import hardware as H
from ganforge.training import trainer as T


def _trainer(tmp_path, recipe="dcgan", **overrides):
    """A Trainer on tiny settings."""
    kw = {"steps": 4, "batch_size": 8, "sample_every": 100, "checkpoint_every": 100, "log_every": 1,
          "num_samples": 8, **overrides}
    cls, cfg = make_config(recipe, None, kw)
    data, info = load_data(cfg)
    return T.Trainer(cls(cfg, info), data, tmp_path, progress=False)


# -- auto precision ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("feature,conv,want", [("avx512_bf16", True, "bf16"), ("amx_bf16", True, "bf16"),
                                               ("avx512_bf16", False, "fp32"), ("", True, "fp32")])
def test_auto_precision_on_cpu(monkeypatch, feature, conv, want):
    monkeypatch.setattr(H, "cpu_bf16_feature", lambda: feature)
    precision, why = H.pick_precision("auto", torch.device("cpu"), conv=conv)
    assert precision == want
    assert why.startswith("auto") and (feature in why if feature else "without" in why)


def test_explicit_precision_is_kept_and_fp16_needs_a_gpu():
    assert H.pick_precision("bf16", torch.device("cpu"), conv=False) == ("bf16", "precision=bf16")
    with pytest.raises(GanforgeError, match="fp16 needs a CUDA GPU"):
        H.pick_precision("fp16", torch.device("cpu"))


def test_auto_precision_is_recorded_and_used(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "cpu_bf16_feature", lambda: "avx512_bf16")
    conv = _trainer(tmp_path / "c", resolution=8, precision="auto")
    mlp = _trainer(tmp_path / "m", recipe="gan", data="toy:ring", precision="auto")
    assert (conv.precision, mlp.precision) == ("bf16", "fp32")
    assert conv.describe()["precision_reason"] == "auto: CPU with avx512_bf16, convolutional nets"
    with conv.autocast():
        y = conv.nets["G"](torch.randn(2, conv.cfg.z_dim))
    assert y.dtype == torch.bfloat16
    s = ganforge.train("dcgan", out=tmp_path / "run", progress=False, resolution=8, steps=2, batch_size=8,
                       precision="auto", sample_every=2, checkpoint_every=2, num_samples=8)
    assert s["precision"] == "bf16" and s["performance"]["precision_reason"].startswith("auto")


# -- gradient penalties under autocast ----------------------------------------------------------------------------
def _critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 1))


def _gp_and_grads(D, real, fake, autocast: bool):
    D.zero_grad(set_to_none=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with ctx:
        gp = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(3))
    gp.backward()
    return gp.detach(), torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None])


def _naive_bf16_gp(D, real, fake):
    """The penalty with D's double backward left in bf16: what the fp32 guard exists to avoid."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (g,) = torch.autograd.grad(D(x_hat).float().sum(), x_hat, create_graph=True)
        return ((g.float().flatten(1).norm(dim=1) - 1) ** 2).mean().detach()


def test_gradient_penalty_under_bf16_autocast_equals_fp32():
    D = _critic()
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.rand(16, 1, 16, 16, generator=gen) * 2 - 1, torch.rand(16, 1, 16, 16, generator=gen) * 2 - 1
    # rescale D so that ||grad D|| ~ 1, as a trained WGAN-GP critic: the penalty is then a small difference
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    with torch.no_grad():
        D[-1].weight /= g.flatten(1).norm(dim=1).mean()
    gp32, g32 = _gp_and_grads(D, real, fake, autocast=False)
    gp16, g16 = _gp_and_grads(D, real, fake, autocast=True)
    assert 0 < gp32 < 0.05
    torch.testing.assert_close(gp16, gp32, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g16, g32, rtol=1e-5, atol=1e-9)
    # without the fp32 guard, bf16's 8-bit mantissa moves the penalty by a percent or more
    naive = _naive_bf16_gp(D, real, fake)
    assert abs(naive - gp32) / gp32 > 5e-3


def test_r1_penalty_as_the_recipes_take_it_under_autocast_is_close_to_fp32():
    """adversarial.d_loss runs R1's real pass with autocast off; its double backward (r1_penalty's
    autograd.grad) still runs inside the trainer's autocast, which costs ~3e-4 relative on this critic.
    Taking that grad with autocast off too would make it exact (reported to the regularizers' owner)."""
    D = _critic()
    real = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    out = []
    for enabled in (False, True):
        x = real.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            with torch.autocast("cpu", enabled=False):   # adversarial.d_loss: the real pass of R1 in fp32
                logits = D(x)
            out.append(r1_penalty(logits, x).detach())
    assert out[0] > 0
    torch.testing.assert_close(out[1], out[0], rtol=2e-3, atol=0)


def test_r1_first_step_matches_between_fp32_and_bf16_runs(tmp_path):
    """Step 0: same D, same real batch, so R1 differs only by the precision of its own computation."""
    r1 = {}
    for precision in ("fp32", "bf16"):
        t = _trainer(tmp_path / precision, resolution=8, precision=precision, r1_gamma=10.0, d_width=8, g_width=8)
        r1[precision] = t.train_step()["D/r1"]
    assert r1["fp32"] > 0
    torch.testing.assert_close(r1["bf16"], r1["fp32"], rtol=2e-3, atol=0)


def test_wgan_gp_trains_alike_in_bf16_and_fp32(tmp_path):
    """Same seed, 3 steps: bf16 only perturbs the nets' activations; the penalty stays within a few %."""
    rows = {}
    for precision in ("fp32", "bf16"):
        t = _trainer(tmp_path / precision, recipe="wgan_gp", resolution=8, precision=precision, d_width=16,
                     g_width=16, d_steps=1)
        logs = [t.train_step() for _ in range(3)]
        rows[precision] = torch.stack([torch.stack([l["D/gp"], l["D/loss"]]) for l in logs])
    assert torch.isfinite(rows["bf16"]).all()
    assert not torch.equal(rows["bf16"], rows["fp32"])                 # bf16 really ran
    torch.testing.assert_close(rows["bf16"][:, 0], rows["fp32"][:, 0], rtol=0.05, atol=1e-3)


# -- layout, optimizer, threads, compile --------------------------------------------------------------------------
def test_conv_nets_and_image_batches_are_channels_last(tmp_path):
    t = _trainer(tmp_path / "c", resolution=8)
    assert t.channels_last
    w = t.nets["G"].net[0].weight                                   # 100 x 128 x 4 x 4
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert t._draw()["real"].is_contiguous(memory_format=torch.channels_last)
    mlp = _trainer(tmp_path / "m", recipe="gan", data="toy:ring")
    assert not mlp.channels_last and mlp.describe()["channels_last"] is False


def test_adam_runs_fused_and_matches_the_plain_loop(tmp_path):
    t = _trainer(tmp_path / "t", resolution=8)
    assert all(g["fused"] for o in t.opts.values() for g in o.param_groups)
    torch.manual_seed(0)
    w = [torch.randn(5, 3, requires_grad=True) for _ in range(2)]
    w2 = [x.detach().clone().requires_grad_(True) for x in w]
    plain = torch.optim.Adam(w, lr=0.1, betas=(0.5, 0.999))
    fused = H.fused_optimizer(torch.optim.Adam(w2, lr=0.1, betas=(0.5, 0.999)))
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0].get("fused")
    for _ in range(3):
        for a, b in zip(w, w2):
            a.grad = torch.full_like(a, 0.3) * a.detach()
            b.grad = a.grad.clone()
        plain.step(), fused.step()
    for a, b in zip(w, w2):
        torch.testing.assert_close(a, b)
    rms = torch.optim.RMSprop(w, lr=0.1)
    assert H.fused_optimizer(rms) is rms and not rms.param_groups[0].get("fused")
    mine = torch.optim.Adam(w, lr=0.1, foreach=True)            # a recipe's own choice is kept
    assert not H.fused_optimizer(mine).param_groups[0]["fused"]


def test_thread_choice_is_deterministic(monkeypatch):
    """threads=N, else OMP_NUM_THREADS, else torch's default within this process's share of its cores; the
    machine's load is never read (it made runs and resumes differ, issue 12)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(H.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(H, "TORCH_DEFAULT_THREADS", 4)
    cpu = torch.device("cpu")
    for busy in (0, 1, 3, 7):
        monkeypatch.setattr(H, "other_runnable_tasks", lambda busy=busy: busy)
        assert H.pick_threads(0, cpu) == (4, "auto: 4 cores for this process")
        assert H.pick_threads(0, cpu, processes=2)[0] == 2          # torchrun: cores split over local ranks
        assert H.pick_threads(3, cpu) == (3, "threads=3")
    monkeypatch.setattr(H, "TORCH_DEFAULT_THREADS", 2)             # torch's count (physical cores) caps it
    assert H.pick_threads(0, cpu) == (2, "auto: torch's thread count when ganforge was imported")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")                      # the user's (or torchrun's) choice
    assert H.pick_threads(0, cpu) == (3, "OMP_NUM_THREADS=3")
    assert H.pick_threads(1, cpu) == (1, "threads=1")               # the config key wins
    assert H.pick_threads(0, torch.device("cuda"))[0] is None


def test_busy_machine_gets_advice_not_a_different_thread_count(monkeypatch):
    monkeypatch.setattr(H.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(H, "other_runnable_tasks", lambda: 2)
    assert "threads=1" in H.busy_note(2) and "2 other busy tasks" in H.busy_note(2)
    assert H.busy_note(1) == ""
    monkeypatch.setattr(H, "other_runnable_tasks", lambda: 0)
    assert H.busy_note(2) == ""


def test_runnable_task_count_reads_proc_loadavg(tmp_path, monkeypatch):
    fake = tmp_path / "loadavg"
    fake.write_text("2.10 1.50 0.90 4/317 12345\n")          # 4 running, this process among them
    monkeypatch.setattr(H, "LOADAVG", str(fake))
    assert H.other_runnable_tasks(samples=3, interval=0.0) == 3
    fake.write_text("garbage")
    assert H.other_runnable_tasks(samples=1) == 0               # unreadable: no advice, never an error


def test_compile_wraps_the_phase_nets_only(tmp_path):
    on = _trainer(tmp_path / "on", compile=True, resolution=8)
    off = _trainer(tmp_path / "off", compile=False, resolution=8)
    assert on.compiled and not off.compiled
    assert all(isinstance(on.phase_nets[k], torch._dynamo.eval_frame.OptimizedModule) for k in ("G", "D"))
    assert off.phase_nets is off.nets
    assert not isinstance(on.nets["G"], torch._dynamo.eval_frame.OptimizedModule)   # checkpoints keep plain keys
    assert set(on.weights()) == set(off.weights())


def test_effective_batch_size_is_printed(tmp_path, capsys):
    t = _trainer(tmp_path / "p", resolution=8, steps=1)
    t.progress = True
    t.run_dir.mkdir(parents=True)
    t.fit()
    out = capsys.readouterr().out
    assert "effective batch size 8" in out and "channels_last" in out and t.precision in out
    assert t.describe()["effective_batch_size"] == 8 and t.describe()["world_size"] == 1


def test_only_small_plain_data_sets_move_to_the_device():
    from ganforge.data.base import Data

    class Paired(Data):
        pass

    x = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    plain = H.data_on_device(Data(x, torch.arange(10)), torch.device("cpu"))
    assert type(plain) is Data and torch.equal(plain.x, x) and plain.y.tolist() == list(range(10))
    sub = Paired(x)
    assert H.data_on_device(sub, torch.device("cpu")) is sub                  # may batch other host tensors
    big = Data(x)
    assert H.data_on_device(big, torch.device("cpu"), limit_bytes=100) is big  # 160 bytes > limit


def test_g_phase_can_reuse_the_d_phase_graph(tmp_path):
    """Gradients go to the phase player's weights only, so the D phase may build G's graph for the G phase:
    one G forward per iteration, with the same G update as running G again on the same z."""
    from ganforge.data.base import Data, DataInfo
    from ganforge.recipes.base import Phase, Recipe, RecipeConfig

    class Reuse(Recipe):
        name = "reuse"

        def build(self):
            torch.manual_seed(0)
            return nn.ModuleDict({"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)})

        def d_loss(self, nets, ctx):
            z = torch.randn(ctx.batch_size, 2)
            fake = nets["G"](z)
            ctx.shared.update(fake=fake, z=z)
            return {"loss": nets["D"](fake.detach()).mean() - nets["D"](ctx.real).mean()}

        def g_loss(self, nets, ctx):
            fake = ctx.shared["fake"] if self.reuse else nets["G"](ctx.shared["z"])
            return {"loss": -nets["D"](fake).mean()}

        def phases(self, step):
            keep = lambda nets: setattr(self, "d_grad", nets["D"].weight.grad.clone())   # noqa: E731
            return [Phase("D", "D", self.d_loss, after_update=keep), Phase("G", "G", self.g_loss)]

    weights, data = {}, Data(torch.randn(16, 2, generator=torch.Generator().manual_seed(1)))
    for reuse in (True, False):
        cfg = RecipeConfig(steps=2, batch_size=4, z_dim=2, sample_every=100, checkpoint_every=100, log_every=100)
        recipe = Reuse(cfg, DataInfo("x", "points", (2,)))
        recipe.reuse = reuse
        t = T.Trainer(recipe, data, tmp_path / str(reuse), progress=False)
        t.train_step()
        assert t.nets["G"].weight.grad is not None
        assert torch.equal(t.nets["D"].weight.grad, recipe.d_grad)       # the G phase left D's gradients alone
        weights[reuse] = {k: v.clone() for k, v in t.nets.state_dict().items()}
    assert weights[True].keys() == weights[False].keys()
    for k in weights[True]:
        torch.testing.assert_close(weights[True][k], weights[False][k])
