import pytest
import torch

from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator, check_resolution
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("res", [8, 16, 32, 64])
@pytest.mark.parametrize("ch", [1, 3])
def test_dcgan_shapes_and_gradients(res, ch):
    G, D = DCGANGenerator(16, res, ch, width=8), DCGANDiscriminator(res, ch, width=8)
    x = G(torch.randn(4, 16))
    assert x.shape == (4, ch, res, res) and x.abs().max() <= 1
    out = D(x)
    assert out.shape == (4,) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in list(G.parameters()) + list(D.parameters()))


def test_dcgan_follows_the_paper():
    G, D = DCGANGenerator(100, 64, 3), DCGANDiscriminator(64, 3)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]     # pytorch/examples ngf=64 at 64x64
    assert not isinstance(list(D.body)[1], torch.nn.BatchNorm2d)           # no BN on D's input layer
    assert isinstance(list(G.net)[-1], torch.nn.Tanh)
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.std().item() - 0.02) < 0.002                              # N(0, 0.02) init
    with pytest.raises(ValueError, match="power-of-two"):
        check_resolution(28)


@pytest.mark.parametrize("norm,kind", [("batch", torch.nn.BatchNorm2d), ("instance", torch.nn.InstanceNorm2d),
                                       ("layer", torch.nn.GroupNorm), ("none", torch.nn.Identity)])
def test_d_norm_option(norm, kind):
    D = DCGANDiscriminator(16, 1, width=8, norm=norm)
    assert isinstance(list(D.body)[3], kind)


def test_dcgan_extra_layers():
    """n 3x3 stride-1 layers at G's last hidden stage and D's first (the WGAN code's n_extra_layers), same shapes."""
    for n in (0, 2):
        G, D = DCGANGenerator(16, 8, 3, width=8, extra_layers=n), DCGANDiscriminator(8, 3, width=8, extra_layers=n)
        for net in (G, D):
            convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
            assert [(c.in_channels, c.stride, c.padding) for c in convs] == [(8, (1, 1), (1, 1))] * n
            norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            assert len(norms) == (1 if net is G else 0) + n    # at 8x8 D has no norm layer of its own
        x = G(torch.randn(4, 16))
        assert x.shape == (4, 3, 8, 8) and D(x).shape == (4,)


def test_mlp_shapes():
    G = MLPGenerator(4, (1, 8, 8), hidden=16, depth=2, tanh=True)
    x = G(torch.randn(5, 4))
    assert x.shape == (5, 1, 8, 8) and x.abs().max() <= 1
    D = MLPDiscriminator((1, 8, 8), hidden=16, depth=2)
    assert D(x).shape == (5,) and D.features(x).shape == (5, 16)
    P = MLPGenerator(4, (2,), hidden=16)
    assert P(torch.randn(3, 4)).shape == (3, 2)


def test_dcgan_d_gradients_stay_channels_last():
    """D's features are flattened as a view of channels_last activations, so no layer's backward sees a
    gradient in another layout than its activation (mixed layouts took a slow path)."""
    from ganforge.models.dcgan import DCGANDiscriminator
    D = DCGANDiscriminator(16, 1, 8).to(memory_format=torch.channels_last)
    grads = []
    def keep(_m, _i, y):
        y.register_hook(grads.append)
    for m in D.body:
        if isinstance(m, torch.nn.LeakyReLU):
            m.register_forward_hook(keep)
    x = torch.randn(4, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    D(x).sum().backward()
    assert len(grads) == 2 and all(g.is_contiguous(memory_format=torch.channels_last) for g in grads)
    # the (h, w, c) order is the same function whatever the layout
    assert torch.allclose(D(x.contiguous()), D(x), atol=1e-6)
