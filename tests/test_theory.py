"""The GAN paper's theory, checked: Goodfellow et al. 2014, Proposition 1 and Theorem 1."""
import json
import math

import torch
from torch import nn

import ganforge
from ganforge.api import load_data, make_config
from ganforge.recipes.base import Phase
from ganforge.training.trainer import Trainer
from ganforge.viz import gauss1d_tv


class Affine(nn.Module):
    """A fixed generator: G(z) = mean + std * z, so p_g = N(mean, std^2)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = nn.Parameter(torch.tensor(mean)), nn.Parameter(torch.tensor(std))

    def forward(self, z):
        return self.mean + self.std * z


def normal_pdf(x, mu, sd):
    return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def test_trained_d_matches_the_optimal_discriminator(tmp_path):
    # Proposition 1: for fixed G, the optimal D is p_data / (p_data + p_g)
    cls, cfg = make_config("gan", "gauss1d", {"steps": 1500, "batch_size": 512, "d_lr": 3e-3, "hidden": 64,
                                              "z_dim": 1, "lr_decay_start": 1.0,   # the fixed G maps a 1-D z
                                              "log_every": 1500, "sample_every": 1500, "checkpoint_every": 1500})
    data, info = load_data(cfg)
    recipe = cls(cfg, info)
    t = Trainer(recipe, data, tmp_path, progress=False)
    t.nets["G"] = Affine(1.5, 0.8)
    recipe.phases = lambda step: [Phase("D", "D", recipe.d_loss)]
    for _ in range(cfg.steps):
        t.train_step()
    mu, sd = info.extra["density"]["mean"], info.extra["density"]["std"]
    x = torch.linspace(mu - 1.5 * sd, mu + 1.5 * sd, 50)
    p_data, p_g = normal_pdf(x, mu, sd), normal_pdf(x, 1.5, 0.8)
    d_star = p_data / (p_data + p_g)
    with torch.no_grad():
        d = torch.sigmoid(t.nets["D"](x[:, None]))
    assert (d - d_star).abs().max() < 0.06, (d - d_star).abs().max()
    assert d_star.max() - d_star.min() > 0.3   # the test is not trivially flat


def test_minimax_game_approaches_d_one_half_and_v_minus_log4(tmp_path):
    # Theorem 1: at the global optimum p_g = p_data, D = 1/2 and V(D, G) = -log 4
    s = ganforge.train("gan", preset="gauss1d", out=tmp_path / "r", progress=False, log_every=100)
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-3:]
    for r in last:
        assert abs(r["D/V"] + math.log(4)) < 0.05, r
        assert abs(r["D/D_real"] - 0.5) < 0.05 and abs(r["D/D_fake"] - 0.5) < 0.05, r
    x = ganforge.load(s["run_dir"]).sample(100_000, seed=1)
    assert abs(x.mean().item() - 2.0) < 0.05 and abs(x.std().item() - 0.5) < 0.05   # p_data = N(2, 0.5^2)
    # p_g = p_data itself: the histogram of 100k samples within total variation 0.05 (0.017 measured; the
    # z_dim=1 preset this replaced ended at 0.36, a spiky lump, with D = 1/2 all the same)
    assert gauss1d_tv(x, 2.0, 0.5) <= 0.05
    assert (tmp_path / "r" / "plots" / "figure1-step-003000.png").is_file()


def test_gauss1d_tv_is_the_total_variation_of_the_histogram():
    g = torch.Generator().manual_seed(0)
    same = gauss1d_tv(2.0 + 0.5 * torch.randn(200_000, generator=g), 2.0, 0.5)
    assert same < 0.02                                     # sampling noise of 100 bins only
    # N(2.5, 0.5^2) against N(2, 0.5^2): TV = 2 Phi(0.5) - 1 = 0.383 (binned, so a little less)
    shifted = gauss1d_tv(2.5 + 0.5 * torch.randn(200_000, generator=g), 2.0, 0.5)
    assert abs(shifted - (2 * 0.5 * (1 + math.erf(0.5 / math.sqrt(2))) - 1)) < 0.02, shifted
    assert gauss1d_tv(torch.full((10,), 100.0), 2.0, 0.5) == 1.0   # all mass outside the bins: disjoint
