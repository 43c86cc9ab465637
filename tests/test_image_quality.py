"""PSNR, SSIM, L1: closed forms, identities, and agreement with scikit-image's SSIM."""
import math

import numpy as np
import pytest
import torch

from ganforge.metrics.image_quality import l1, psnr, ssim


@pytest.fixture(autouse=True)
def _one_thread():
    # the test machine's cores are shared: one intra-op thread avoids thread-pool contention
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _images(n=2, c=3, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, side, side, generator=g, dtype=torch.float64) * 2 - 1


def _signs(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=g).double() * 2 - 1


def test_psnr_closed_form():
    x = _images()
    deltas = torch.tensor([0.1, 0.02], dtype=torch.float64)
    y = x + deltas.view(-1, 1, 1, 1) * _signs(x.shape)  # |x - y| = delta everywhere: MSE = delta^2
    per_image = psnr(x, y, reduction="none")
    expected = [10 * math.log10(2.0 ** 2 / d ** 2) for d in deltas.tolist()]
    assert per_image.tolist() == pytest.approx(expected, abs=1e-9)
    assert psnr(x, y).item() == pytest.approx(sum(expected) / 2, abs=1e-9)
    assert psnr(x, y, data_range=1.0, reduction="none")[0].item() == pytest.approx(10 * math.log10(1 / 0.01))


def test_psnr_identical_is_infinite():
    x = _images()
    assert math.isinf(psnr(x, x).item()) and psnr(x, x).item() > 0
    assert psnr(x[0], x[0] + 0.1).item() == pytest.approx(10 * math.log10(4 / 0.01))  # C x H x W accepted


def test_l1_closed_form():
    x = _images()
    y = x + 0.25 * _signs(x.shape)
    assert l1(x, y).item() == pytest.approx(0.25)
    assert l1(x, x).item() == 0


def test_ssim_identical_is_one_and_noise_lowers_it():
    x = _images()
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scores = [ssim(x, (x + s * noise).clamp(-1, 1)).item() for s in (0.05, 0.2, 0.8)]
    assert 1 > scores[0] > scores[1] > scores[2]
    y = (x + 0.2 * noise).clamp(-1, 1)
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-12)


def test_ssim_of_constant_images_closed_form():
    # constant images: sigma_x = sigma_y = sigma_xy = 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, L = 0.3, -0.5, 2.0
    x = torch.full((1, 1, 16, 16), a, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), b, dtype=torch.float64)
    c1 = (0.01 * L) ** 2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels):
    metrics = pytest.importorskip("skimage.metrics")
    x = _images(n=3, c=channels, side=24, seed=3)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = (0.7 * x + 0.3 * noise).clamp(-1, 1)
    ours = ssim(x.float(), y.float(), reduction="none")
    for i in range(3):
        a = x[i].float().double().permute(1, 2, 0).numpy()
        b = y[i].float().double().permute(1, 2, 0).numpy()
        ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            data_range=2.0, channel_axis=2)
        assert abs(ours[i].item() - ref) < 1e-4
    # and with a [0, 255] data range
    a, b = (x[0, 0].numpy() + 1) * 127.5, (y[0, 0].numpy() + 1) * 127.5
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255.0)
    ours = ssim(torch.from_numpy(np.ascontiguousarray(a))[None, None], torch.from_numpy(b)[None, None],
                data_range=255.0)
    assert abs(ours.item() - ref) < 1e-4


def test_clear_errors():
    x = _images(side=8)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(x, x)
    assert ssim(x, x, window=7, sigma=1.0).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, window=6)
    with pytest.raises(ValueError, match="different shapes"):
        psnr(x, x[:1])
    with pytest.raises(ValueError, match="reduction"):
        l1(x, x, reduction="sum")
