"""Colour measures for colourisation (pix2pix gray2color): how colourful an image is and how far its hues are
from a reference's. Images are N x 3 x H x W RGB in [-1, 1] (sRGB-encoded, as the data pipeline stores them).

- CIELAB (CIE 1976 L*a*b*, D65 white): sRGB decoded to linear light (IEC 61966-2-1), to XYZ, then
  L* = 116 f(Y/Yn) - 16, a* = 500 (f(X/Xn) - f(Y/Yn)), b* = 200 (f(Y/Yn) - f(Z/Zn)); scikit-image's rgb2lab,
  which the tests compare against. Chroma C* = sqrt(a*^2 + b*^2), hue angle h = atan2(b*, a*).
- hue_error: over the reference's clearly coloured pixels (C* >= min_chroma), the mean circular distance
  between the two hue angles, in degrees (0 = every hue right, 180 = every hue opposite). A pixel the image
  leaves achromatic (C* < 2, hue undefined) counts 90 degrees, the expected error of a hue drawn at random,
  so a grey output scores exactly 90 and a washed-out but rightly tinted one is not punished for its chroma
  (colourfulness reports that).
- colourfulness: Hasler & Suesstrunk 2003 ("Measuring colourfulness in natural images", SPIE 5007), M =
  sigma_rgyb + 0.3 mu_rgyb on rg = R - G, yb = (R + G)/2 - B in 0..255 units; 0 for grey, ~100 very colourful.
"""
from __future__ import annotations

import torch
from torch import Tensor

_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]], dtype=torch.float64)   # scikit-image's sRGB -> XYZ
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)          # D65, 2 degree observer
ACHROMATIC = 2.0


def rgb_to_lab(x: Tensor) -> Tensor:
    """N x 3 x H x W RGB in [-1, 1] -> N x 3 x H x W (L*, a*, b*), float64."""
    c = ((x.double().clamp(-1, 1) + 1) / 2)
    lin = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = torch.einsum("ck,nkhw->nchw", _XYZ.to(x.device), lin) / _WHITE.to(x.device).view(1, 3, 1, 1)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def hue_error(x: Tensor, ref: Tensor, min_chroma: float = 10.0) -> float:
    """Mean hue-angle distance in degrees between x and ref over ref's pixels of chroma >= min_chroma."""
    if x.shape != ref.shape or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"hue_error takes two N x 3 x H x W RGB batches of one shape; got {tuple(x.shape)} "
                         f"and {tuple(ref.shape)}")
    lab_x, lab_r = rgb_to_lab(x), rgb_to_lab(ref)
    chroma_x, chroma_r = lab_x[:, 1:].norm(dim=1), lab_r[:, 1:].norm(dim=1)
    mask = chroma_r >= min_chroma
    if not mask.any():
        raise ValueError(f"hue_error: the reference has no pixel of chroma >= {min_chroma} (it is grey)")
    d = torch.atan2(lab_x[:, 2], lab_x[:, 1]) - torch.atan2(lab_r[:, 2], lab_r[:, 1])
    d = torch.rad2deg(torch.atan2(torch.sin(d), torch.cos(d)).abs())          # circular distance in [0, 180]
    d = torch.where(chroma_x < ACHROMATIC, torch.full_like(d, 90.0), d)
    return d[mask].mean().item()


def colourfulness(x: Tensor) -> float:
    """Hasler & Suesstrunk's M per image, averaged over the batch."""
    r, g, b = ((x.double().clamp(-1, 1) + 1) * 127.5).unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    return (spread + 0.3 * (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()).mean().item()

