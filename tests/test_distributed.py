"""Multi-process training on CPU: 2 gloo processes launched the way torchrun launches them (env vars).

Facts checked: synchronized BatchNorm equals BatchNorm over the union batch (values and gradients) and plain
BatchNorm does not; after a phase every rank holds the mean of the per-rank gradients (through DDP's
reducer, and through the manual fallback for nets reached by a method other than forward); data shards are
disjoint; `torchrun -m ganforge train` writes one run (rank 0 only, its TensorBoard events too) with the effective
batch size recorded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganforge.data.base import Batches, Data
from ganforge.errors import GanforgeError
from ganforge.training import distributed

WORKER = textwrap.dedent(r'''
    import json, sys
    import torch
    from torch import nn
    from ganforge.training import distributed as D

    torch.set_num_threads(1)
    env, device = D.setup(torch.device("cpu"))
    out = {"rank": env.rank, "world": env.world_size, "backend": env.backend}
    r, W = env.rank, env.world_size

    # 1. synchronized BatchNorm == BatchNorm over the union batch (forward values and input/weight grads)
    torch.manual_seed(0)
    x_all = torch.randn(8, 3, 4, 4) * 3 + 1
    w_out = torch.randn(8, 3, 4, 4)                   # fixed weights of a linear loss over the outputs
    n = 8 // W
    for sync in (True, False):
        torch.manual_seed(1)
        bn = nn.BatchNorm2d(3)
        nn.init.normal_(bn.weight, 1.0, 0.3)
        if sync:
            bn = D.sync_batchnorm(nn.Sequential(bn), device)[0]
        x = x_all[r * n:(r + 1) * n].clone().requires_grad_(True)
        y = bn(x)
        (y * w_out[r * n:(r + 1) * n]).sum().backward()
        out[f"y_{sync}"] = y.detach().tolist()
        out[f"xgrad_{sync}"] = x.grad.tolist()
        out[f"wgrad_{sync}"] = bn.weight.grad.tolist()
        out[f"running_mean_{sync}"] = bn.running_mean.tolist()
        out[f"type_{sync}"] = type(bn).__name__

    # 2. per-phase DDP: after a D phase and a G phase each rank holds the mean of the per-rank gradients
    class Disc(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(2, 8), nn.Linear(8, 1)
        def features(self, x):
            return torch.tanh(self.body(x))
        def forward(self, x):
            return self.head(self.features(x)).squeeze(1)
    torch.manual_seed(2)
    nets = nn.ModuleDict({"G": nn.Linear(3, 2), "D": Disc()})
    reps = D.Replicas(nets, env, device)
    out["wrapped"] = sorted(k for k, v in reps.nets.items() if isinstance(v, torch.nn.parallel.DistributedDataParallel))
    torch.manual_seed(10 + r)                        # per-rank data and noise
    real, z = torch.randn(4, 2), torch.randn(4, 3)
    def phase(player, fn):
        for k, net in nets.items():
            net.requires_grad_(k == player)
        for p in nets.parameters():
            p.grad = None
        with reps.phase([player]) as m:
            fn(m).backward()
        reps.finish([player])
        return [p.grad for p in nets[player].parameters() if p.grad is not None]
    d_loss = lambda m: m["D"](m["G"](z).detach()).mean() - m["D"](real).mean()
    g_loss = lambda m: -m["D"](m["G"](z)).mean()
    fm_loss = lambda m: (m["D"].features(real).mean(0) - m["D"].features(m["G"](z).detach()).mean(0)).pow(2).sum()
    for name, fn, player in (("d", d_loss, "D"), ("g", g_loss, "G"), ("fm", fm_loss, "D")):
        out[f"grad_{name}"] = [g.flatten().tolist() for g in phase(player, fn)]
        # the same loss on this rank alone, without any wrapper: its mean over ranks is the expected value
        for k, net in nets.items():
            net.requires_grad_(k == player)
        for p in nets.parameters():
            p.grad = None
        fn(nets).backward()
        out[f"local_{name}"] = [p.grad.flatten().tolist() for p in nets[player].parameters() if p.grad is not None]
    # the trainer's reuse of the D step's fake: G runs inside the D phase (its DDP replica under no_sync), its
    # graph is kept and the G phase back-propagates through it; G's gradients must still be the rank mean
    nets.requires_grad_(True)
    for p in nets.parameters():
        p.grad = None
    with reps.phase(["D"]) as m:
        fake = m["G"](z)
        (m["D"](fake.detach()).mean() - m["D"](real).mean()).backward(inputs=list(nets["D"].parameters()))
    reps.finish(["D"])
    with reps.phase(["G"]) as m:
        (-m["D"](fake).mean()).backward(inputs=list(nets["G"].parameters()))
    reps.finish(["G"])
    out["grad_reuse"] = [p.grad.flatten().tolist() for p in nets["G"].parameters()]
    out["local_reuse"] = out["local_g"]        # the D weights did not change, so the expected value is g's
    out["logs"] = {k: float(v) for k, v in D.mean_over_ranks({"a": torch.tensor(float(r))}, env).items()}
    out["gathered"] = D.gather_state({"rank": r}, env)

    # 3. training under DDP (the Trainers use this process's group): stopped at step 2 and resumed == straight
    import ganforge
    from safetensors.torch import load_file
    d = sys.argv[1]
    kw = dict(resolution=8, batch_size=8, steps=4, sample_every=2, checkpoint_every=2, log_every=1,
              num_samples=8, g_width=8, d_width=8, precision="fp32")
    straight = ganforge.train("dcgan", out=f"{d}/straight", progress=False, **kw)
    ganforge.train("dcgan", out=f"{d}/split", progress=False, stop_at=2, **kw)
    ganforge.resume(f"{d}/split", progress=False)
    out["performance"] = straight["performance"]
    out["images"] = straight["images"]
    if r == 0:
        a = load_file(f"{d}/straight/checkpoints/step-000004/weights.safetensors")
        b = load_file(f"{d}/split/checkpoints/step-000004/weights.safetensors")
        out["resume_identical"] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        st = torch.load(f"{d}/straight/checkpoints/step-000004/state.pt", weights_only=True)
        out["saved_ranks"] = 1 + len(st["ranks"])
    # 4. sync_bn: G's BatchNorm uses the union batch, so its running statistics agree across ranks
    from ganforge.api import load_data, make_config
    from ganforge.training.trainer import Trainer

    for sync in (True, False):
        cls, cfg = make_config("dcgan", None, {**kw, "sync_bn": sync})
        data, info = load_data(cfg)
        t = Trainer(cls(cfg, info), data, f"{d}/sb{sync}", progress=False)
        t.train_step()
        bns = [m for m in t.nets["G"].modules() if "BatchNorm" in type(m).__name__]
        out[f"bn_types_{sync}"] = sorted({type(m).__name__ for m in bns})
        out[f"bn_running_{sync}"] = [m.running_mean.tolist() for m in bns]
    D.shutdown()                               # what atexit does, here before the files are written
    with open(d + f"/rank{r}.json", "w") as f:
        json.dump(out, f)
''')


def _torchrun(*args: str, world: int = 2) -> list[str]:
    """torchrun's standalone rendezvous: its agent binds the store on port 0 (the kernel picks a free port
    atomically) and the workers join through that store, so no port is chosen, released and raced for. A
    port probed with bind-and-close can be taken by another process (or by a worker's own outgoing
    connection) before rank 0 binds it: the flake this replaces."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *args]


def _launch(tmp_path: Path, world: int = 2) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(_torchrun(str(script), str(tmp_path), world=world), env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return _launch(tmp_path_factory.mktemp("dist"))


def _close(a, b, tol=1e-5):
    return torch.allclose(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), atol=tol)


def test_process_group_from_torchrun_env(ranks):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["gathered"] == [{"rank": 0}, {"rank": 1}] == ranks[1]["gathered"]
    assert all(r["logs"]["a"] == 0.5 for r in ranks)               # mean of ranks 0 and 1


def test_sync_batchnorm_equals_union_batch(ranks):
    torch.manual_seed(0)
    x_all = (torch.randn(8, 3, 4, 4) * 3 + 1).requires_grad_(True)
    w_out = torch.randn(8, 3, 4, 4)
    torch.manual_seed(1)
    bn = torch.nn.BatchNorm2d(3)
    torch.nn.init.normal_(bn.weight, 1.0, 0.3)
    y = bn(x_all)
    (y * w_out).sum().backward()
    assert ranks[0]["type_True"] == "AllReduceBatchNorm" and ranks[0]["type_False"] == "BatchNorm2d"
    y_sync = ranks[0]["y_True"] + ranks[1]["y_True"]
    assert _close(y_sync, y.detach().tolist())
    assert _close(ranks[0]["xgrad_True"] + ranks[1]["xgrad_True"], x_all.grad.tolist())
    # the weight gradient of the union objective is the sum of the per-rank ones (DDP then averages)
    wsum = torch.tensor(ranks[0]["wgrad_True"]) + torch.tensor(ranks[1]["wgrad_True"])
    assert _close(wsum.tolist(), bn.weight.grad.tolist())
    assert _close(ranks[0]["running_mean_True"], bn.running_mean.tolist())
    assert _close(ranks[0]["running_mean_True"], ranks[1]["running_mean_True"])
    # plain BatchNorm normalizes each half on its own: a different result
    assert not _close(ranks[0]["y_False"] + ranks[1]["y_False"], y.detach().tolist(), tol=1e-2)


@pytest.mark.parametrize("phase", ["d", "g", "fm", "reuse"])
def test_phase_gradients_are_rank_means(ranks, phase):
    """d/g go through DDP's reducer; fm reaches D only through D.features (manual all-reduce fallback)."""
    assert ranks[0]["wrapped"] == ["D", "G"]
    assert len(ranks[0][f"grad_{phase}"]) == len(ranks[0][f"local_{phase}"]) == {"d": 4, "g": 2, "fm": 2, "reuse": 2}[phase]
    for a, b in zip(ranks[0][f"grad_{phase}"], ranks[1][f"grad_{phase}"]):
        assert _close(a, b)
    for got, l0, l1 in zip(ranks[0][f"grad_{phase}"], ranks[0][f"local_{phase}"], ranks[1][f"local_{phase}"]):
        mean = ((torch.tensor(l0) + torch.tensor(l1)) / 2).tolist()
        assert _close(got, mean)
    # the ranks really saw different data
    assert any(not _close(l0, l1) for l0, l1 in zip(ranks[0][f"local_{phase}"], ranks[1][f"local_{phase}"]))


def test_ddp_training_resumes_bit_identically_and_rank0_writes(ranks, tmp_path_factory):
    perf = ranks[0]["performance"]
    assert perf["world_size"] == 2 and perf["effective_batch_size"] == 16 == 2 * perf["batch_size_per_process"]
    assert ranks[0]["images"] == 4 * 16                      # images counted over both processes
    assert ranks[0]["resume_identical"] is True
    assert ranks[0]["saved_ranks"] == 2                      # rank 1's RNG and data position are in the checkpoint


def test_sync_bn_option_synchronizes_the_trainers_batchnorm(ranks):
    assert ranks[0]["bn_types_True"] == ["AllReduceBatchNorm"] and ranks[0]["bn_types_False"] == ["BatchNorm2d"]
    assert _close(ranks[0]["bn_running_True"], ranks[1]["bn_running_True"])
    assert not _close(ranks[0]["bn_running_False"], ranks[1]["bn_running_False"])


def test_torchrun_cli(tmp_path):
    """`torchrun --nproc_per_node=2 -m ganforge train ...` end to end: one run directory, written once."""
    out = tmp_path / "run"
    cmd = _torchrun("-m", "ganforge", "train", "dcgan", "--steps", "2", "--out", str(out), "--quiet",
                    "resolution=8", "batch_size=4", "g_width=8", "d_width=8", "sample_every=2",
                    "checkpoint_every=2", "log_every=1", "num_samples=4", "log=tensorboard")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]                # written by one process only
    (events,) = (out / "tensorboard").iterdir()             # one writer: rank 0's
    ea = EventAccumulator(str(events.parent))
    ea.Reload()
    assert [s.step for s in ea.Scalars("D/loss")] == [1, 2] and [i.step for i in ea.Images("samples")] == [2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["performance"]["effective_batch_size"] == 8 and summary["images"] == 16
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-000002"
    assert sorted(x.name for x in (out / "samples").iterdir()) == ["step-000002.png"]


def test_shutdown_returns_when_a_peer_is_gone(tmp_path):
    """The exit-time barrier (distributed.shutdown) must not hold a rank for the group's 30-minute timeout
    when its peer has already left: rank 1 exits at once, rank 0 still leaves within the barrier's timeout."""
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent('''
        import os, sys, time, torch
        from ganforge.training import distributed as D
        env, _ = D.setup(torch.device("cpu"))
        if env.rank == 1:
            os._exit(0)                 # gone without a word: no barrier, no destroy
        time.sleep(1)
        t = time.perf_counter()
        D.shutdown(timeout_s=3)
        print(f"left after {time.perf_counter() - t:.1f} s", flush=True)
    '''))
    p = subprocess.run(_torchrun(str(script)), env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert float(p.stdout.split("left after ")[1].split()[0]) < 10, p.stdout


def test_batches_shards_are_disjoint_and_cover_the_epoch():
    data = Data(torch.arange(20, dtype=torch.float32).view(20, 1))
    seen = []
    for rank in range(2):
        b = Batches(data, 5, seed=3, device=torch.device("cpu"), rank=rank, world_size=2)
        seen.append(torch.cat([next(b)["real"].flatten() for _ in range(2)]).long().tolist())
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(20))


def test_single_process_env_is_a_no_op(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    env, device = distributed.setup(torch.device("cpu"))
    assert (env.world_size, env.rank, env.enabled, env.is_main, device.type) == (1, 0, False, True, "cpu")
    nets = torch.nn.ModuleDict({"G": torch.nn.Linear(2, 2)})
    assert distributed.Replicas(nets, env, device).nets is nets


def test_bad_torchrun_env_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(GanforgeError, match="RANK=5"):
        distributed.setup(torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(GanforgeError, match="WORLD_SIZE"):
        distributed.setup(torch.device("cpu"))
