"""Full-reference image quality: PSNR, SSIM and L1 between images x and a reference y.

- PSNR = 10 log10(L^2 / MSE(x, y)) with L the data range (2 for images in [-1, 1]).
- SSIM, Wang et al. 2004, "Image quality assessment: from error visibility to structural similarity"
  (IEEE TIP 13(4)), Eq. 13: SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) /
  ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)), C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03,
  local statistics under an 11x11 Gaussian window with sigma 1.5 (Sec. III-C), averaged over the
  positions where the window fits inside the image (the mean SSIM, Eq. 17) and then over channels.
  This is scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L), which the tests compare against.

Each function takes N x C x H x W (or C x H x W) tensors, computes per image in float64, and returns the
batch mean (reduction="mean", how SR papers report Set5/Set14 numbers) or the N per-image values
(reduction="none"). Everything is differentiable torch, so SSIM can also serve as a loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

K1, K2 = 0.01, 0.03


def _pair(x: Tensor, y: Tensor, name: str) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"{name}: images have different shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{name}: expected N x C x H x W or C x H x W images, got shape {tuple(x.shape)}")
    return x.double(), y.double()


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    raise ValueError(f"reduction={reduction!r}; use 'mean' or 'none'")


def l1(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute difference per image, |x - y| averaged over C, H, W."""
    x, y = _pair(x, y, "l1")
    return _reduce((x - y).abs().flatten(1).mean(1), reduction)


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0, reduction: str = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB per image; +inf where x == y (MSE 0). data_range 2 for [-1, 1]."""
    x, y = _pair(x, y, "psnr")
    mse = (x - y).pow(2).flatten(1).mean(1)
    return _reduce(10.0 * torch.log10(data_range ** 2 / mse), reduction)  # 1/0 -> inf, as it should


def gaussian_window(window: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian of `window` taps centred on the middle one (float64)."""
    t = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5,
         reduction: str = "mean") -> Tensor:
    """Mean structural similarity (Wang 2004) per image, averaged over channels; 1 iff x == y."""
    x, y = _pair(x, y, "ssim")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"ssim: window must be an odd number of pixels, got {window}")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"ssim: images of {tuple(x.shape[-2:])} px are smaller than the {window}x{window} "
                         f"window; pass a smaller odd window (e.g. window=7, sigma=1.0 for 8x8 images)")
    n, c = x.shape[:2]
    g = gaussian_window(window, sigma).to(x.device)
    # separable Gaussian, "valid" positions only (where the window fits inside the image)
    kh, kw = g.view(1, 1, window, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, window).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    # population (biased) local moments: use_sample_covariance=False in scikit-image's terms
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    # every channel has the same number of positions, so the flat mean is the mean of per-channel means
    return _reduce(s.reshape(n, -1).mean(1), reduction)

