"""Standing statistics of an EMA generator with BatchNorm (training/ema.py, Trainer.standing)."""
import copy

import torch
from torch import nn

import ganforge
from ganforge.training.ema import EMA


def test_standing_statistics_are_the_mean_over_passes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = EMA(net, 0.9)
    batches = [torch.randn(8, 3) * (i + 1) + i for i in range(5)]
    assert ema.standing_statistics(lambda m, i: m(batches[i]), passes=5)
    acts = [ema.net[0](b) for b in batches]
    bn = ema.net[1]
    # momentum None: the plain mean over passes of each batch's mean and unbiased variance
    torch.testing.assert_close(bn.running_mean, torch.stack([a.mean(0) for a in acts]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([a.var(0) for a in acts]).mean(0))
    assert bn.momentum == net[1].momentum and not ema.net.training
    # the next update copies the live net's statistics back
    ema.update(net)
    assert torch.equal(bn.running_mean, net[1].running_mean)


def test_standing_statistics_without_batchnorm_changes_nothing():
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    ema = EMA(net, 0.9)
    before = copy.deepcopy(ema.net.state_dict())
    assert not ema.standing_statistics(lambda m, i: m(torch.randn(2, 3)), passes=3)
    assert all(torch.equal(before[k], v) for k, v in ema.net.state_dict().items())


def test_saved_ema_generator_carries_its_own_statistics(tmp_path, tiny):
    from safetensors.torch import load_file
    cfg = {**tiny, "resolution": 8, "ema_decay": 0.5}
    ganforge.train("dcgan", out=tmp_path / "r", progress=False, **cfg)
    w = load_file(str(tmp_path / "r" / "checkpoints" / "step-000004" / "weights.safetensors"))
    mean = "net.1.running_mean"             # G's first BatchNorm
    # the EMA copy's statistics are re-measured on its weights, not copied from the live G
    assert not torch.equal(w["ema.G." + mean], w["G." + mean])
    # and they are what G's first layer gives on noise with the EMA weights (16 passes of the batch size)
    g = ganforge.load(tmp_path / "r")
    gen = torch.Generator().manual_seed(cfg.get("seed", 0) + 2)
    with torch.no_grad():
        means = [g.G.net[0](g.recipe.sample_inputs(cfg["batch_size"], generator=gen).view(cfg["batch_size"], -1, 1, 1)
                            .contiguous(memory_format=torch.channels_last)).float().mean((0, 2, 3))
                 for _ in range(16)]
    torch.testing.assert_close(w["ema.G." + mean], torch.stack(means).mean(0), rtol=2e-2, atol=2e-3)


def test_ema_averages_trained_weights_and_copies_fixed_ones():
    from ganforge.training.ema import EMA

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    ema = EMA(net, 0.5)
    start = [p.detach().clone() for p in net.parameters()]
    net[1].requires_grad_(False)                 # a fixed part (Recipe.fixed), replaced wholesale
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for (name, p_ema), p, p0 in zip(ema.net.named_parameters(), net.parameters(), start):
        expected = p if name.startswith("1.") else 0.5 * p0 + 0.5 * p
        assert torch.allclose(p_ema, expected), name
