"""Style building blocks: equalized lr (ProGAN §4.1), PixelNorm (§4.2), minibatch stddev (§3),
noise injection and AdaIN (StyleGAN eq. 1), modulated convolution (StyleGAN2 eq. 1-3)."""
import math

import pytest
import torch
from torch.nn import functional as F

from ganforge.errors import GanforgeError
from ganforge.nn.style import (AdaIN, EqualizedConv2d, EqualizedLinear, MinibatchStdDev, ModulatedConv2d,
                               NoiseInjection, PixelNorm)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # small nets run fastest on one thread, and the test machine's cores are shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("lr_mul,gain,bias_init", [(1.0, math.sqrt(2), 0.0), (0.01, 1.0, 0.5)])
def test_equalized_linear_scales_weights_at_run_time(lr_mul, gain, bias_init):
    layer = EqualizedLinear(24, 7, lr_mul=lr_mul, bias_init=bias_init, gain=gain)
    x = torch.randn(5, 24)
    c = gain / math.sqrt(24) * lr_mul
    expected = F.linear(x, layer.weight * c, layer.bias * lr_mul)
    torch.testing.assert_close(layer(x), expected)
    # effective bias starts at bias_init whatever lr_mul is
    torch.testing.assert_close(layer.bias * lr_mul, torch.full((7,), bias_init))


def test_equalized_conv_scales_weights_at_run_time():
    layer = EqualizedConv2d(3, 5, 3, stride=2, gain=1.5)
    x = torch.randn(2, 3, 8, 8)
    expected = F.conv2d(x, layer.weight * 1.5 / math.sqrt(3 * 9), layer.bias, stride=2, padding=1)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (2, 5, 4, 4)
    assert EqualizedConv2d(3, 5, 3, bias=False).bias is None


@pytest.mark.parametrize("fan_in,lr_mul", [(16, 1.0), (1024, 1.0), (256, 0.01)])
def test_equalized_init_is_he_whatever_fan_in_and_lr_mul(fan_in, lr_mul):
    layer = EqualizedLinear(fan_in, 512, lr_mul=lr_mul)  # He gain sqrt(2) by default
    assert layer.weight.std().item() == pytest.approx(1.0 / lr_mul, rel=0.05)  # stored N(0, 1/lr_mul^2)
    y = layer(torch.randn(4096, fan_in))
    assert y.var().item() == pytest.approx(2.0, rel=0.1)  # output variance gain^2 for unit inputs


def test_adam_moves_every_effective_weight_by_lr_times_he_constant():
    # the point of equalized lr: Adam's first step is lr * sign(grad) on the stored weight, so the
    # effective weight c * W moves by lr * c, with c = gain / sqrt(fan_in) * lr_mul
    lr = 1e-3
    for fan_in, lr_mul in [(8, 1.0), (200, 1.0), (32, 0.01)]:
        layer = EqualizedLinear(fan_in, 6, lr_mul=lr_mul).double()  # float64: the step is ~1e-3 of W
        before = (layer.weight * layer.scale).detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=lr, eps=1e-12)
        layer(torch.randn(10, fan_in, dtype=torch.float64)).square().sum().backward()
        opt.step()
        step = (layer.weight * layer.scale).detach() - before
        c = math.sqrt(2) / math.sqrt(fan_in) * lr_mul
        torch.testing.assert_close(step.abs(), torch.full_like(step, lr * c), rtol=1e-6, atol=0)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(3, 8, 5, 5) * 7 + 2
    y = PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(3, 5, 5))
    torch.testing.assert_close(PixelNorm()(3 * x), y)  # each pixel's vector keeps only its direction
    torch.testing.assert_close(PixelNorm()(torch.tensor([[3.0, 4.0]])), torch.tensor([[3.0, 4.0]]) / math.sqrt(12.5))


def test_minibatch_stddev_closed_form():
    x = torch.randn(4, 6, 3, 3)
    y = MinibatchStdDev(group_size=2, num_features=2)(x)
    assert y.shape == (4, 8, 3, 3)
    torch.testing.assert_close(y[:, :6], x)
    # sample i is grouped with i + 2 (groups {0, 2} and {1, 3}); feature f covers channels 3f..3f+2
    for i in range(4):
        pair = x[[i % 2, i % 2 + 2]]
        for f in range(2):
            std = pair[:, 3 * f:3 * f + 3].std(dim=0, unbiased=False)
            expected = (std.square() + 1e-8).sqrt().mean()
            torch.testing.assert_close(y[i, 6 + f], torch.full((3, 3), expected.item()))


def test_minibatch_stddev_group_size_is_clipped_to_the_batch():
    x = torch.randn(2, 4, 2, 2)
    torch.testing.assert_close(MinibatchStdDev(group_size=4)(x), MinibatchStdDev(group_size=2)(x))
    identical = torch.ones(4, 3, 2, 2)
    assert MinibatchStdDev()(identical)[:, 3].max().item() == pytest.approx(1e-4)  # sqrt(eps): no variation


def test_minibatch_stddev_rejects_batches_and_channels_it_cannot_split():
    with pytest.raises(GanforgeError, match="multiple of the group size 4"):
        MinibatchStdDev(group_size=4)(torch.randn(6, 4, 2, 2))
    with pytest.raises(GanforgeError, match="num_features"):
        MinibatchStdDev(group_size=2, num_features=2)(torch.randn(2, 3, 2, 2))


def test_noise_injection_scales_noise_per_channel():
    layer = NoiseInjection(3)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), x)  # zero init: no noise until learned
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
    noise = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(layer(x, noise=noise), x + torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1) * noise)
    a = layer(x, generator=torch.Generator().manual_seed(1))
    b = layer(x, generator=torch.Generator().manual_seed(1))
    c = layer(x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    # one noise image per sample, shared by all channels
    torch.testing.assert_close((a - x)[:, 1] / -1.0, (a - x)[:, 0] / 0.5)
    with pytest.raises(GanforgeError, match="1 x 4 x 4"):
        layer(x, noise=torch.randn(2, 1, 8, 8))


def test_adain_normalizes_then_applies_the_style():
    layer = AdaIN(5, w_dim=7)
    x = torch.randn(3, 5, 6, 6) * 4 + 1
    w = torch.randn(3, 7)
    y = layer(x, w)
    scale, bias = layer.to_scale(w), layer.to_bias(w)
    # eq. 1: per channel, mean y_b and standard deviation |y_s|
    torch.testing.assert_close(y.mean(dim=(2, 3)), bias, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-4, rtol=1e-4)
    # the input's own per-channel statistics are erased
    shift = torch.randn(1, 5, 1, 1)
    torch.testing.assert_close(layer(x * 3 + shift, w), y, atol=1e-4, rtol=1e-4)
    # style scale bias init 1, style bias init 0
    zero = torch.zeros(1, 7)
    torch.testing.assert_close(layer.to_scale(zero), torch.ones(1, 5))
    torch.testing.assert_close(layer.to_bias(zero), torch.zeros(1, 5))


def test_modulation_multiplies_input_channels_by_the_style():
    layer = ModulatedConv2d(4, 3, 3, w_dim=6, demodulate=False)
    w = torch.randn(2, 6)
    s = layer.affine(w)
    expected = layer.weight[None] / math.sqrt(4 * 9) * s[:, None, :, None, None]  # eq. 1
    torch.testing.assert_close(layer.modulated_weight(w), expected)


def test_demodulation_gives_unit_norm_kernels_and_unit_variance_outputs():
    layer = ModulatedConv2d(16, 8, 3, w_dim=6)
    w = torch.randn(3, 6) * 3
    weight = layer.modulated_weight(w)
    # eq. 3: sum over input channels and taps of w''^2 is 1 for every sample and output channel
    torch.testing.assert_close(weight.square().sum(dim=(2, 3, 4)), torch.ones(3, 8))
    # hence i.i.d. unit-variance inputs give unit-variance outputs (StyleGAN2 §2.2)
    y = layer(torch.randn(3, 16, 66, 66), w)[:, :, 1:-1, 1:-1]  # borders see zero padding
    torch.testing.assert_close(y.var(dim=(2, 3)), torch.ones(3, 8), atol=0.08, rtol=0)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [False, True])
def test_grouped_modulated_conv_equals_one_conv_per_sample(demodulate, up):
    layer = ModulatedConv2d(4, 5, 3, w_dim=6, demodulate=demodulate, up=up)
    x, w = torch.randn(3, 4, 5, 5), torch.randn(3, 6)
    y = layer(x, w)
    assert y.shape == (3, 5, 10, 10) if up else (3, 5, 5, 5)
    weight = layer.modulated_weight(w)
    src = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if up else x
    for n in range(3):
        torch.testing.assert_close(y[n:n + 1], F.conv2d(src[n:n + 1], weight[n], padding=1), atol=1e-5, rtol=1e-5)


def test_demodulate_option_changes_the_output():
    torch.manual_seed(3)
    on = ModulatedConv2d(4, 5, 3, w_dim=6, demodulate=True)
    off = ModulatedConv2d(4, 5, 3, w_dim=6, demodulate=False)
    off.load_state_dict(on.state_dict())
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 6)
    assert not torch.allclose(on(x, w), off(x, w), atol=1e-3)
