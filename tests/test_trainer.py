import json

import pytest
import torch
from torch import nn

import ganforge
from ganforge.data import Data, DataInfo
from ganforge.errors import GanforgeError
from ganforge.recipes.base import Phase, Recipe, RecipeConfig
from ganforge.training.trainer import Trainer


class Counting(Recipe):
    """A recipe that records which phase ran at which step, and with which batch."""
    name = "counting"

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.calls = []

    def build(self):
        return nn.ModuleDict({"G": nn.Linear(1, 1), "D": nn.Linear(1, 1)})

    def _loss(self, tag, use_batch=True):
        def loss(nets, ctx):
            first = ctx.real[0, 0].item() if use_batch else None
            self.calls.append((tag, ctx.step, first))
            net = nets["D"] if tag != "G" else nets["G"]
            return {"loss": net(torch.ones(1, 1)).sum()}
        return loss

    def phases(self, step):
        return [Phase("D", "D", self._loss("D"), repeat=3), Phase("G", "G", self._loss("G", use_batch=False)),
                Phase("R", "D", self._loss("R"), every=2)]


def _counting_trainer(tmp_path):
    data = Data(torch.arange(100, dtype=torch.float32)[:, None])
    info = DataInfo("x", "points", (1,))
    cfg = RecipeConfig(steps=4, batch_size=1, z_dim=1, sample_every=1000, checkpoint_every=1000, log_every=1000)
    return Trainer(Counting(cfg, info), data, tmp_path, progress=False)


def test_every_and_repeat_semantics(tmp_path):
    t = _counting_trainer(tmp_path)
    for _ in range(4):
        t.train_step()
    tags = [(tag, step) for tag, step, _ in t.recipe.calls]
    want = []
    for s in range(4):
        want += [("D", s)] * 3 + [("G", s)] + ([("R", s)] if s % 2 == 0 else [])
    assert tags == want
    # each repeat draws a fresh batch; the G phase, which never touches ctx.real, draws none
    d_batches = [b for tag, _, b in t.recipe.calls if tag in ("D", "R")]
    assert len(set(d_batches)) == len(d_batches)
    assert t.images == len(d_batches)


def test_each_phase_changes_only_its_players_parameters(tmp_path):
    t = _counting_trainer(tmp_path)
    before = {k: v.clone() for k, v in t.nets.state_dict().items()}
    t.recipe.phases = lambda step: [Phase("D", "D", t.recipe._loss("D"))]
    t.train_step()
    after = t.nets.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("G."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("D."))


def _weights(run):
    from safetensors.torch import load_file
    from ganforge.training import checkpoint
    return load_file(str(checkpoint.latest(run) / "weights.safetensors"))


@pytest.mark.parametrize("recipe,extra", [("dcgan", {"resolution": 8}), ("gan", {"data": "toy:ring"}),
                                          ("cgan", {"resolution": 8, "ema_decay": 0.9})])
def test_resume_is_bit_identical(tmp_path, tiny, recipe, extra):
    kw = {**tiny, **extra, "steps": 6, "checkpoint_every": 3}
    ganforge.train(recipe, out=tmp_path / "straight", progress=False, **kw)
    ganforge.train(recipe, out=tmp_path / "split", progress=False, stop_at=3, **kw)
    ganforge.resume(tmp_path / "split", progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # metrics.jsonl of the resumed run has each step once, equal to the straight run's losses
    rows = lambda p: [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    ra, rb = rows(tmp_path / "straight"), rows(tmp_path / "split")
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    assert [r["D/loss"] for r in ra] == [r["D/loss"] for r in rb]


def test_resume_extends_with_steps(tmp_path, tiny):
    kw = {**tiny, "resolution": 8, "checkpoint_every": 2}
    ganforge.train("dcgan", out=tmp_path / "straight", progress=False, **{**kw, "steps": 6})
    ganforge.train("dcgan", out=tmp_path / "short", progress=False, **{**kw, "steps": 4})
    s = ganforge.resume(tmp_path / "short", steps=6, progress=False)
    assert s["step"] == 6
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "short")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(GanforgeError, match="already at step 6"):
        ganforge.resume(tmp_path / "short", progress=False)


def test_ema_tracks_g_and_is_used_for_samples(tmp_path, tiny):
    s = ganforge.train("dcgan", out=tmp_path / "ema", progress=False, **{**tiny, "resolution": 8, "ema_decay": 0.5})
    w = _weights(tmp_path / "ema")
    ema_keys = [k for k in w if k.startswith("ema.G.")]
    assert ema_keys
    assert any(not torch.equal(w[k], w[k[4:]]) for k in ema_keys if "running" not in k and "num_batches" not in k)
    plain = ganforge.train("dcgan", out=tmp_path / "plain", progress=False, **{**tiny, "resolution": 8})
    assert not any(k.startswith("ema.") for k in _weights(tmp_path / "plain"))
    # load() prefers the EMA generator
    g = ganforge.load(tmp_path / "ema")
    assert torch.equal(g.G.net[0].weight, w["ema.G.net.0.weight"])
    assert s["samples"] and plain["samples"]


def test_run_directory_layout(tmp_path, tiny):
    s = ganforge.train("dcgan", out=tmp_path / "r", progress=False, **{**tiny, "resolution": 8})
    r = tmp_path / "r"
    cfg = json.loads((r / "config.json").read_text())
    assert cfg["recipe"] == "dcgan" and cfg["config"]["steps"] == 4 and "ganforge_version" in cfg
    assert (r / "samples" / "step-000002.png").is_file() and (r / "samples" / "step-000004.png").is_file()
    assert (r / "plots" / "losses.png").is_file()
    assert (r / "checkpoints" / "latest").read_text().strip() == "step-000004"
    assert sorted(p.name for p in (r / "checkpoints" / "step-000004").iterdir()) == [
        "meta.json", "state.pt", "weights.safetensors"]
    assert json.loads((r / "summary.json").read_text())["step"] == 4 == s["step"]
    # state.pt holds only tensors and plain values
    torch.load(r / "checkpoints" / "step-000004" / "state.pt", weights_only=True)


def test_out_dir_holding_a_different_run_is_refused_and_untouched(tmp_path, tiny):
    ganforge.train("dcgan", out=tmp_path / "r", progress=False, **{**tiny, "resolution": 8})
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(GanforgeError, match="different run.*g_lr"):
        ganforge.train("dcgan", out=tmp_path / "r", progress=False, **{**tiny, "resolution": 8, "g_lr": 1e-3})
    with pytest.raises(GanforgeError, match="different run.*recipe 'dcgan'"):
        ganforge.train("gan", out=tmp_path / "r", progress=False, **tiny)
    with pytest.raises(GanforgeError, match="already holds this run.*ganforge resume"):
        ganforge.train("dcgan", out=tmp_path / "r", progress=False, **{**tiny, "resolution": 8})
    after = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert before == after


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    t = _counting_trainer(tmp_path)
    t.cfg.checkpoint_every, t.cfg.log_every, t.cfg.steps = 1, 10, 6

    def loss(nets, ctx):   # finite for 2 steps, then NaN (between two log steps)
        out = nets["D"](torch.ones(1, 1)).sum()
        return {"loss": out * (float("nan") if ctx.step >= 2 else 1.0)}
    t.recipe.phases = lambda step: [Phase("D", "D", loss)]
    with pytest.raises(GanforgeError, match="diverged at step 3: D/loss became NaN or infinite"):
        t.fit()
    from ganforge.training import checkpoint
    assert checkpoint.latest(tmp_path).name == "step-000002"
    w = _weights(tmp_path)
    assert all(torch.isfinite(v).all() for v in w.values())


def test_eval_every_logs_scores_keeps_the_best_and_leaves_training_unchanged(tmp_path, tiny):
    kw = {**tiny, "resolution": 8, "steps": 6, "checkpoint_every": 3, "eval_every": 2, "eval_num": 64}
    ganforge.train("dcgan", out=tmp_path / "e", progress=False, **kw)
    rows = [json.loads(x) for x in (tmp_path / "e" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid" in r]
    assert [r["step"] for r in evals] == [2, 4, 6]
    best = json.loads((tmp_path / "e" / "checkpoints" / "best" / "meta.json").read_text())
    assert best["eval"]["eval/fid"] == min(r["eval/fid"] for r in evals)
    assert ganforge.load(tmp_path / "e" / "checkpoints" / "best").sample(2).shape == (2, 1, 8, 8)
    # evaluating never moves the training RNG: same weights as without it; resume keeps the best value
    ganforge.train("dcgan", out=tmp_path / "plain", progress=False, **{**kw, "eval_every": 0})
    a, b = _weights(tmp_path / "e"), _weights(tmp_path / "plain")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ganforge.train("dcgan", out=tmp_path / "split", progress=False, stop_at=3, **kw)
    ganforge.resume(tmp_path / "split", progress=False)
    c = _weights(tmp_path / "split")
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert json.loads((tmp_path / "split" / "checkpoints" / "best" / "meta.json").read_text())["step"] == best["step"]


def test_eval_metric_and_num_choose_what_is_scored(tmp_path, tiny):
    kw = {**tiny, "resolution": 8, "steps": 2, "eval_every": 2, "eval_metric": "pr", "eval_num": 32}
    ganforge.train("dcgan", out=tmp_path / "pr", progress=False, **kw)
    rows = [json.loads(x) for x in (tmp_path / "pr" / "metrics.jsonl").read_text().splitlines()]
    ev = [r for r in rows if any(k.startswith("eval/") for k in r)][0]
    assert "eval/recall" in ev and "eval/fid" not in ev
    best = json.loads((tmp_path / "pr" / "checkpoints" / "best" / "meta.json").read_text())
    assert best["eval"]["eval/recall"] == ev["eval/recall"]


def test_lazy_phase_counts_every_times_and_corrects_its_players_optimizer(tmp_path):
    """StyleGAN2's lazy regularization in one place: a phase run every k steps has its loss counted k times,
    and its player's Adam runs at lr * c, betas ** c, c = k / (k + 1) (Counting's phase R: every=2, on D)."""
    t = _counting_trainer(tmp_path)
    c = 2 / 3
    d, g = t.opts["D"].param_groups[0], t.opts["G"].param_groups[0]
    assert d["lr"] == pytest.approx(2e-4 * c) and d["betas"] == pytest.approx((0.5 ** c, 0.999 ** c))
    assert d["initial_lr"] == pytest.approx(2e-4 * c)          # the lr schedule scales the corrected lr
    assert g["lr"] == pytest.approx(2e-4) and tuple(g["betas"]) == (0.5, 0.999)
    t.recipe.phases = lambda step: [Phase("R", "D", lambda nets, ctx: {"loss": nets["D"](torch.ones(1, 1)).sum()},
                                          every=2)]
    t.train_step()
    assert t.nets["D"].weight.grad.item() == 2.0 and t.nets["D"].bias.grad.item() == 2.0   # d/dw (w + b) x 2
