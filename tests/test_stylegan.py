"""StyleGAN (arXiv:1812.04948) / StyleGAN2 (arXiv:1912.04958): mapping, synthesis, truncation,
style mixing, noise inputs, residual D, path length penalty."""
import math

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.models.stylegan import (MODES, MappingNetwork, StyleDiscriminator, StyleGenerator, draw_crossover,
                                      mix_styles, path_length_penalty)
from ganforge.nn.style import AdaIN, EqualizedLinear, ModulatedConv2d

Z = W = 16


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # small nets run fastest on one thread, and the test machine's cores are shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def generator(resolution=16, channels=3, mode="adain"):
    return StyleGenerator(Z, W, resolution, channels, width=16, max_width=32, mode=mode)


def set_noise_strength(G, value):
    with torch.no_grad():
        for layer in G.layers:
            layer.noise.weight.fill_(value)


def test_mapping_network_normalizes_z_and_uses_the_lr_multiplier():
    f = MappingNetwork(Z, W)
    dense = [m for m in f.modules() if isinstance(m, EqualizedLinear)]
    assert len(dense) == 8 and all(m.lr_mul == 0.01 for m in dense)
    z = torch.randn(5, Z)
    assert f(z).shape == (5, W)
    torch.testing.assert_close(f(3.0 * z), f(z))  # PixelNorm on z: only its direction matters
    assert len([m for m in MappingNetwork(Z, W, layers=2).modules() if isinstance(m, EqualizedLinear)]) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_finite_and_gradients_reach_every_parameter(mode, resolution, channels):
    G = generator(resolution, channels, mode)
    D = StyleDiscriminator(resolution, channels, width=16, max_width=32)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2
    z = torch.randn(4, Z)
    fake = G(z, mix_z=torch.randn(4, Z), crossover=G.num_ws // 2)
    assert fake.shape == (4, channels, resolution, resolution) and torch.isfinite(fake).all()
    logits = D(fake)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    logits.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mode_selects_adain_or_modulated_convolution():
    def kinds(G):
        return {type(m) for m in G.modules()}
    adain, modulated = generator(mode="adain"), generator(mode="modulated")
    assert AdaIN in kinds(adain) and ModulatedConv2d not in kinds(adain)
    assert ModulatedConv2d in kinds(modulated) and AdaIN not in kinds(modulated)
    assert all(layer.conv.demodulate for layer in modulated.layers)
    with pytest.raises(GanforgeError, match="mode"):
        generator(mode="stylegan3")


def test_every_style_input_is_used():
    for mode in MODES:
        G = generator(mode=mode)
        ws = G.styles(torch.randn(2, Z)).detach().clone().requires_grad_(True)
        G.synthesis(ws, noise="const").square().sum().backward()
        assert (ws.grad.abs().sum(dim=(0, 2)) > 0).all(), mode


def test_truncation_pulls_w_towards_the_tracked_average():
    G = generator()
    w = torch.randn(8, W)
    G.update_w_avg(w, beta=0.9)
    torch.testing.assert_close(G.w_avg, 0.1 * w.mean(dim=0))  # from zeros: beta * 0 + (1 - beta) * mean
    G.update_w_avg(w, beta=0.9)
    torch.testing.assert_close(G.w_avg, (0.9 * 0.1 + 0.1) * w.mean(dim=0))
    z = torch.randn(5, Z)
    free = G.mapping(z)
    torch.testing.assert_close(G.mapping(z, truncation=0.0), G.w_avg.expand(5, W))  # psi = 0: w_avg itself
    torch.testing.assert_close(G.mapping(z, truncation=0.7), G.w_avg + 0.7 * (free - G.w_avg))
    images = G(torch.randn(3, Z), truncation=0.0, noise="const")
    torch.testing.assert_close(images[0], images[2])  # every z gives the average image


def test_mix_styles_switches_at_the_crossover():
    w1, w2 = torch.randn(2, 6, W), torch.randn(2, 6, W)
    for crossover in range(7):
        ws = mix_styles(w1, w2, crossover)
        torch.testing.assert_close(ws[:, :crossover], w1[:, :crossover])
        torch.testing.assert_close(ws[:, crossover:], w2[:, crossover:])
    with pytest.raises(GanforgeError, match="crossover 7"):
        mix_styles(w1, w2, 7)


@pytest.mark.parametrize("mode", MODES)
def test_style_mixing_feeds_w2_from_the_crossover_layer_on(mode):
    G = generator(mode=mode)
    z1, z2 = torch.randn(2, Z), torch.randn(2, Z)
    crossover = 3
    ws = G.styles(z1, mix_z=z2, crossover=crossover)
    w1, w2 = G.mapping(z1), G.mapping(z2)
    assert torch.equal(ws[:, 1], w1) and torch.equal(ws[:, crossover - 1], w1)
    assert torch.equal(ws[:, crossover], w2) and torch.equal(ws[:, -1], w2)
    # layer outputs before the crossover are those of z1 alone, the crossover layer's differ
    outputs = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outputs.append(o)) for layer in G.layers]
    G(z1, noise="const")
    alone, outputs[:] = list(outputs), []
    G(z1, mix_z=z2, crossover=crossover, noise="const")
    for hook in hooks:
        hook.remove()
    for i in range(crossover):
        torch.testing.assert_close(outputs[i], alone[i])
    assert not torch.allclose(outputs[crossover], alone[crossover])
    torch.testing.assert_close(G(z1, mix_z=z2, crossover=G.num_ws, noise="const"), G(z1, noise="const"))


def test_style_mixing_arguments_come_together():
    G = generator()
    with pytest.raises(GanforgeError, match="both mix_z and crossover"):
        G(torch.randn(2, Z), mix_z=torch.randn(2, Z))
    with pytest.raises(GanforgeError, match="both mix_z and crossover"):
        G(torch.randn(2, Z), crossover=2)
    with pytest.raises(GanforgeError, match=f"N x {G.num_ws} x {W}"):
        G.synthesis(torch.randn(2, G.num_ws - 1, W))


def test_draw_crossover_mixes_with_the_given_probability():
    gen = torch.Generator().manual_seed(0)
    draws = [draw_crossover(8, 0.9, gen) for _ in range(2000)]
    mixed = [c for c in draws if c < 8]
    assert len(mixed) / len(draws) == pytest.approx(0.9, abs=0.03)
    assert set(mixed) == set(range(1, 8))  # every layer boundary is a possible crossover
    assert {draw_crossover(8, 0.0, gen) for _ in range(50)} == {8}
    again = torch.Generator().manual_seed(0)
    assert [draw_crossover(8, 0.9, again) for _ in range(2000)] == draws


@pytest.mark.parametrize("mode", MODES)
def test_noise_modes(mode):
    G = generator(mode=mode)
    set_noise_strength(G, 0.5)
    ws = G.styles(torch.randn(2, Z))
    torch.testing.assert_close(G.synthesis(ws, noise="const"), G.synthesis(ws, noise="const"))
    zeros = [torch.zeros(1, 1, h, w) for h, w in G.noise_shapes]
    torch.testing.assert_close(G.synthesis(ws, noise="none"), G.synthesis(ws, noise=zeros))
    a = G.synthesis(ws, generator=torch.Generator().manual_seed(1))
    b = G.synthesis(ws, noise="random", generator=torch.Generator().manual_seed(1))
    c = G.synthesis(ws, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, G.synthesis(ws, noise="none"))
    with pytest.raises(GanforgeError, match="noise must be"):
        G.synthesis(ws, noise="fixed")


def test_noise_leaves_the_global_statistics_set_by_the_styles_unchanged_adain():
    # AdaIN resets every channel's mean and std to the style's after the noise (StyleGAN §3.2), and toRGB
    # is 1x1 and linear: with the styles held fixed, new noise changes the pixels but not the image means
    G = generator(mode="adain")
    set_noise_strength(G, 1.0)
    ws = G.styles(torch.randn(3, Z))
    a = G.synthesis(ws, generator=torch.Generator().manual_seed(1))
    b = G.synthesis(ws, generator=torch.Generator().manual_seed(2))
    assert (a - b).abs().max() > 0.05
    torch.testing.assert_close(a.mean(dim=(2, 3)), b.mean(dim=(2, 3)), atol=1e-5, rtol=0)


def test_noise_changes_only_local_detail_modulated():
    # noise enters per pixel; at the last layer only toRGB (1x1) follows it, the layer before adds a 3x3 conv
    G = generator(resolution=16, mode="modulated")
    set_noise_strength(G, 1.0)
    ws = G.styles(torch.randn(2, Z))
    noise = [torch.randn(1, 1, h, w) for h, w in G.noise_shapes]
    base = G.synthesis(ws, noise=noise)
    for layer, reach in ((len(noise) - 1, 0), (len(noise) - 2, 1)):
        bumped = [n.clone() for n in noise]
        bumped[layer][0, 0, 7, 9] += 3.0
        changed = (G.synthesis(ws, noise=bumped) - base).abs().amax(dim=(0, 1)) > 0
        assert changed[7, 9]
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert (rows - 7).abs().max() <= reach and (cols - 9).abs().max() <= reach


def test_update_w_avg_is_a_buffer_and_checks_beta():
    G = generator()
    assert "w_avg" in dict(G.named_buffers()) and "w_avg" not in dict(G.named_parameters())
    with pytest.raises(GanforgeError, match="beta"):
        G.update_w_avg(torch.randn(2, W), beta=1.5)


def test_discriminator_compares_samples_through_minibatch_stddev():
    D = StyleDiscriminator(16, 3, width=16, max_width=32)
    x = torch.randn(4, 3, 16, 16)
    y = x.clone()
    y[1] = torch.randn(3, 16, 16)
    assert not torch.allclose(D(x)[0], D(y)[0])  # sample 0's logit depends on its group
    D1 = StyleDiscriminator(16, 3, width=16, max_width=32, mbstd_group=1)
    torch.testing.assert_close(D1(x)[0], D1(y)[0])  # groups of one: independent samples
    with pytest.raises(GanforgeError, match="3 x 16 x 16"):
        D(torch.randn(4, 3, 8, 8))


def test_path_length_penalty_closed_form():
    # fake = sum_{l,d} a_ld ws_ld as one 1x1 pixel: J^T y = y a, so the length is |y| sqrt(mean_l ||a_l||^2)
    a = torch.randn(3, 5, requires_grad=True)  # the "weights" of this linear synthesis
    ws = torch.randn(4, 3, 5, requires_grad=True)
    fake = (ws * a).sum(dim=(1, 2)).view(4, 1, 1, 1)
    penalty, pl_mean = path_length_penalty(fake, ws, pl_mean=0.5, decay=0.1, generator=torch.Generator().manual_seed(3))
    y = torch.randn(4, 1, 1, 1, generator=torch.Generator().manual_seed(3)).view(4)
    lengths = (y.abs() * a.square().sum(dim=1).mean().sqrt()).detach()
    expected_mean = 0.5 + 0.1 * (lengths.mean() - 0.5)
    torch.testing.assert_close(pl_mean, expected_mean)
    torch.testing.assert_close(penalty, (lengths - expected_mean).square().mean())
    assert not pl_mean.requires_grad
    penalty.backward()  # the graph is kept: the penalty trains the weights that made fake
    assert a.grad is not None and a.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", MODES)
def test_path_length_penalty_on_the_generator(mode):
    G = generator(resolution=8, mode=mode)
    ws = G.styles(torch.randn(2, Z))
    penalty, pl_mean = path_length_penalty(G.synthesis(ws), ws, torch.tensor(0.0))
    assert penalty.item() >= 0 and pl_mean.item() > 0
    penalty.backward()
    assert G.const.grad is not None and torch.isfinite(G.const.grad).all()
