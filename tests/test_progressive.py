"""Progressive GAN (arXiv:1710.10196): growing G and D, fade-in continuity, schedule, real-image blending."""
import pytest
import torch
from torch.nn import functional as F

from ganforge.errors import GanforgeError
from ganforge.models.progressive import (ProDiscriminator, ProGenerator, downscale_to, progan_schedule,
                                         stage_widths)

Z = 16


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # small nets run fastest on one thread, and the test machine's cores are shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def nets(resolution, channels):
    return (ProGenerator(Z, resolution, channels, width=16, max_width=32),
            ProDiscriminator(resolution, channels, width=16, max_width=32))


def test_widths_double_towards_4x4_up_to_the_cap():
    assert stage_widths(32, 16, 32) == [32, 32, 32, 16]
    assert stage_widths(4, 8, 64) == [8]
    with pytest.raises(GanforgeError, match="power of two"):
        stage_widths(24, 16, 32)


@pytest.mark.parametrize("resolution", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_stage_has_the_right_shapes_and_gradients(resolution, channels):
    G, D = nets(resolution, channels)
    assert G.max_stage == D.max_stage == resolution.bit_length() - 3
    z = torch.randn(4, Z)
    for stage in range(G.max_stage + 1):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        fake = G(z, stage, 0.5)
        size = 4 * 2 ** stage
        assert fake.shape == (4, channels, size, size)
        logits = D(fake, stage, 0.5)
        assert logits.shape == (4,) and torch.isfinite(logits).all()
        logits.sum().backward()
        # blocks up to the stage and the two toRGB / fromRGB in the fade get gradients, nothing else
        in_use = {f"blocks.{k}." for k in range(stage + 1)} | {f"to_rgb.{stage}.", f"from_rgb.{stage}."}
        if stage > 0:
            in_use |= {f"to_rgb.{stage - 1}.", f"from_rgb.{stage - 1}."}
        for net in (G, D):
            for name, p in net.named_parameters():
                used = any(name.startswith(prefix) for prefix in in_use)
                assert (p.grad is not None and p.grad.abs().sum() > 0) == used, (stage, name)
    assert torch.isfinite(G(z)).all() and G(z).shape == (4, channels, resolution, resolution)  # default: full


def test_generator_at_alpha_zero_equals_the_smaller_network_upsampled():
    G, _ = nets(32, 3)
    z = torch.randn(3, Z)
    for stage in range(1, G.max_stage + 1):
        smaller = G(z, stage - 1, 1.0)
        torch.testing.assert_close(G(z, stage, 0.0), F.interpolate(smaller, scale_factor=2, mode="nearest"))
        assert not torch.allclose(G(z, stage, 1.0), G(z, stage, 0.0))  # the new block does change the output


def test_fade_in_is_linear_in_alpha():
    G, D = nets(16, 1)
    z = torch.randn(4, Z)
    x = torch.randn(4, 1, 16, 16)
    for alpha in (0.25, 0.7):
        torch.testing.assert_close(G(z, 2, alpha), (1 - alpha) * G(z, 2, 0.0) + alpha * G(z, 2, 1.0))
    # alpha small: the output moves continuously away from the old one
    assert (G(z, 2, 1e-4) - G(z, 2, 0.0)).abs().max() < 1e-3
    assert (D(x, 2, 1e-4) - D(x, 2, 0.0)).abs().max() < 1e-3


def test_discriminator_at_alpha_zero_sees_the_pooled_image_through_the_smaller_network():
    _, D = nets(32, 3)
    x = torch.randn(4, 3, 32, 32)
    for stage in range(D.max_stage, 0, -1):
        x_stage = downscale_to(x, stage, 1.0)
        torch.testing.assert_close(D(x_stage, stage, 0.0), D(F.avg_pool2d(x_stage, 2), stage - 1, 1.0),
                                   atol=1e-5, rtol=1e-5)


def test_generator_normalizes_every_pixel_feature_vector():
    G, _ = nets(16, 3)
    h = G.blocks[0](torch.randn(2, Z) * 5)
    for block in G.blocks[1:]:
        h = block(h)
        torch.testing.assert_close(h.square().mean(dim=1), torch.ones(h.shape[0], *h.shape[2:]), atol=1e-4, rtol=0)


def test_downscale_to_averages_and_fades_like_the_generator():
    real = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 3, 2, 2)  # 2 x 3 x 8 x 8
    torch.testing.assert_close(downscale_to(real, 1, 1.0), real)  # already at the stage's resolution
    pooled = downscale_to(real, 0, 1.0)
    assert pooled.shape == (2, 3, 4, 4)
    assert pooled[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    low = F.interpolate(pooled, scale_factor=2, mode="nearest")
    torch.testing.assert_close(downscale_to(real, 1, 0.0), low)
    torch.testing.assert_close(downscale_to(real, 1, 0.3), 0.7 * low + 0.3 * real)


def test_downscaled_reals_at_alpha_zero_look_the_same_to_d_as_at_the_smaller_stage():
    _, D = nets(16, 1)
    real = torch.randn(4, 1, 16, 16)
    torch.testing.assert_close(D(downscale_to(real, 2, 0.0), 2, 0.0), D(downscale_to(real, 1, 1.0), 1, 1.0),
                               atol=1e-5, rtol=1e-5)


def test_schedule_alternates_fade_in_and_stabilize_phases():
    # 100 images per phase, 10 per step: 10 steps per phase; resolution 16 has stages 0, 1, 2
    schedule = [progan_schedule(step, 16, 100, 10) for step in range(60)]
    assert schedule[:10] == [(0, 1.0)] * 10                       # 4x4 only stabilizes
    assert schedule[10:20] == [(1, k / 10) for k in range(10)]    # fade in 8x8, alpha linear
    assert schedule[20:30] == [(1, 1.0)] * 10
    assert schedule[30:40] == [(2, k / 10) for k in range(10)]
    assert schedule[40:] == [(2, 1.0)] * 20
    assert progan_schedule(10 ** 9, 16, 100, 10) == (2, 1.0)     # full resolution for good
    # alpha counts images, not steps: 4 steps of 30 images are 20 images into the first fade-in
    assert progan_schedule(4, 16, 100, 30) == (1, pytest.approx(0.2))


def test_schedule_and_stage_arguments_are_checked():
    with pytest.raises(GanforgeError, match="power of two"):
        progan_schedule(0, 12, 100, 10)
    with pytest.raises(GanforgeError, match="batch_size"):
        progan_schedule(0, 16, 100, 0)
    G, D = nets(8, 1)
    with pytest.raises(GanforgeError, match="stages 0..1"):
        G(torch.randn(2, Z), 2, 1.0)
    with pytest.raises(GanforgeError, match="alpha"):
        G(torch.randn(2, Z), 1, 1.5)
    with pytest.raises(GanforgeError, match="4 x 4"):
        D(torch.randn(2, 1, 8, 8), 0, 1.0)
    with pytest.raises(GanforgeError, match="z of shape"):
        G(torch.randn(2, Z + 1))
    with pytest.raises(GanforgeError, match="multiple of 8"):
        downscale_to(torch.randn(2, 1, 12, 12), 1, 1.0)
