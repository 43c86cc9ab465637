"""wgan, wgan_gp, sngan, lsgan: paper defaults, the SNGAN ResNet, spectral norms, the gradient penalty on every
kind of data and under autocast, and the divergence stop."""
import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.api import _recipes, load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.models.resnet import ResNetDiscriminator, ResNetGenerator
from ganforge.recipes.base import StepContext
from ganforge.training import checkpoint
from ganforge.training.trainer import Trainer

FAST = {"batch_size": 8, "sample_every": 1000, "checkpoint_every": 1000, "log_every": 1000, "steps": 10}
NEW = ("wgan", "wgan_gp", "sngan", "lsgan")


def trainer(recipe, tmp_path, **kw):
    cls, cfg = make_config(recipe, overrides={**FAST, **kw})
    data, info = load_data(cfg)
    return Trainer(cls(cfg, info), data, tmp_path, progress=False)


@pytest.mark.parametrize("res,ch", [(8, 1), (16, 3), (32, 1)])
def test_resnet_shapes_range_and_gradients(res, ch):
    torch.manual_seed(0)
    G, D = ResNetGenerator(16, res, ch, width=8), ResNetDiscriminator(res, ch, width=8)
    x = G(torch.randn(4, 16))
    assert x.shape == (4, ch, res, res) and x.abs().max() <= 1
    # D downsamples to 8x8 (4x4 for 8x8 inputs) before two more blocks and global sum pooling
    assert D.body(x).shape[-1] == (4 if res == 8 else 8)
    logits = D(x)
    assert logits.shape == (4,)
    (logits.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in list(G.parameters()) + list(D.parameters()))
    with pytest.raises(ValueError, match="power-of-two"):
        ResNetGenerator(16, 12, ch)


def test_sngan_normalises_every_critic_layer_to_spectral_norm_one(tmp_path):
    t = trainer("sngan", tmp_path, resolution=8, g_width=8, d_width=8)
    for _ in range(3):
        t.train_step()
    D = t.nets["D"].eval()           # eval: no power iteration, read the current normalised weight
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for m in layers:   # conv kernels reshaped to [out, in*k*k] (Miyato eq. 8)
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.03)
    cfg = t.cfg
    assert (cfg.loss, cfg.d_steps, cfg.betas, cfg.arch) == ("hinge", 5, (0.0, 0.9), "resnet")


def test_spectral_norm_on_points_and_dcgan_nets(tmp_path):
    for kw in ({"data": "toy:ring", "hidden": 8}, {"arch": "dcgan", "d_norm": "none", "resolution": 8,
                                                    "d_width": 8, "g_width": 8}):
        D = trainer("sngan", tmp_path, **kw).nets["D"]
        layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert layers and all(hasattr(m, "parametrizations") for m in layers)


def test_wgan_follows_algorithm_1(tmp_path):
    t = trainer("wgan", tmp_path, data="toy:ring", hidden=8)
    assert isinstance(t.opts["D"], torch.optim.RMSprop) and t.opts["D"].param_groups[0]["lr"] == 5e-5
    assert (t.cfg.clip, t.cfg.d_steps, t.cfg.loss) == (0.01, 5, "wasserstein")
    t.train_step()
    assert t.images == 5 * 8                       # n_critic fresh real batches, none for G
    assert all(p.abs().max() <= 0.01 for p in t.nets["D"].parameters())


def test_wgan_gp_defaults(tmp_path):
    t = trainer("wgan_gp", tmp_path, resolution=16, g_width=8, d_width=8)
    c = t.cfg
    assert (c.gp_weight, c.d_steps, c.g_lr, c.betas, c.clip) == (10.0, 5, 1e-4, (0.0, 0.9), 0.0)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in t.nets["D"].modules())
    assert isinstance(t.opts["D"], torch.optim.Adam)


@pytest.mark.parametrize("data,kw", [("digits", {"resolution": 8}), ("digits:stacked", {"resolution": 8}),
                                     ("toy:ring", {"hidden": 8})])
def test_gradient_penalty_on_points_and_1_and_3_channel_images_under_autocast(data, kw, tmp_path):
    t = trainer("wgan_gp", tmp_path, data=data, g_width=8, d_width=8, **kw)
    real = next(t.batches)["real"]

    def gp(autocast):
        torch.manual_seed(1)
        ctx = StepContext(0, lambda: {"real": real}, torch.device("cpu"), 8)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return t.recipe.d_loss(t.nets, ctx)["gp"]
    fp32, bf16 = gp(False), gp(True)
    assert fp32.dtype == torch.float32 and torch.isfinite(bf16)
    assert bf16.item() == pytest.approx(fp32.item(), rel=0.05)


def test_image_recipes_accept_each_loss(tmp_path):
    for loss in ("hinge", "wasserstein", "lsgan", "ns"):
        s = ganforge.train("lsgan", out=tmp_path / loss, progress=False, loss=loss, resolution=8, g_width=8,
                           d_width=8, **{**FAST, "steps": 2})
        assert s["step"] == 2
    with pytest.raises(GanforgeError, match="'loss' must be one of"):
        make_config("sngan", overrides={"loss": "softmax"})


def test_lsgan_accuracy_uses_its_own_targets(tmp_path):
    t = trainer("lsgan", tmp_path, data="toy:ring", hidden=8)
    t.nets["D"].head.bias.data.fill_(0.3)        # outputs near 0.3: closer to the fake target 0
    t.nets["D"].head.weight.data.zero_()
    ctx = StepContext(0, lambda: {"real": torch.randn(8, 2)}, torch.device("cpu"), 8)
    out = t.recipe.d_loss(t.nets, ctx)
    assert out["acc_real"] == 0 and out["acc_fake"] == 1
    assert out["loss"].item() == pytest.approx(0.5 * 0.7 ** 2 + 0.5 * 0.3 ** 2)   # Mao eq. 2, a=0 b=1


@pytest.mark.parametrize("name", NEW + ("gan",))
def test_presets_resolve(name):
    for preset in _recipes()[name].presets:
        make_config(name, preset)


def test_bad_architecture_keys():
    with pytest.raises(GanforgeError, match="'arch' must be"):
        make_config("sngan", overrides={"arch": "vit"})
    with pytest.raises(GanforgeError, match="'d_norm' must be one of batch, layer, none for arch=resnet"):
        make_config("sngan", overrides={"d_norm": "instance"})


@pytest.mark.parametrize("lr", [1e3, 1e9])
def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(lr, tmp_path):
    # every step is checkpointed; Adam at lr 1e3 blows up after a few steps, at 1e9 in the first one.
    # An infinite gradient can leave the logged losses finite but the weights NaN: the recipe stops
    # right after that update, before the trainer writes the bad weights.
    kw = {"data": "toy:ring", "hidden": 8, "z_dim": 2, "batch_size": 8, "steps": 50, "log_every": 1,
          "checkpoint_every": 1, "sample_every": 1000, "g_lr": lr, "d_lr": lr}
    with pytest.raises(GanforgeError, match=r"diverged at step \d+: .* became NaN or infinite.*lower the learning") as e:
        ganforge.train("gan", out=tmp_path / "r", progress=False, **kw)
    if lr == 1e9:
        assert not (tmp_path / "r" / "checkpoints").exists()
        assert "no checkpoint was written before it" in str(e.value) and "last good" not in str(e.value)
        return
    last = checkpoint.latest(tmp_path / "r")
    assert f"the last good checkpoint is {last}" in str(e.value)
    assert 0 < int(last.name.split("-")[1]) < 50
    weights = load_file(str(last / "weights.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
