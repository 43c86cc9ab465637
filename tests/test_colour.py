"""Colour measures (metrics/colour.py): CIELAB against scikit-image, hue error and colourfulness in closed
form on images whose answer is known."""
import numpy as np
import pytest
import torch

from ganforge.metrics.colour import colourfulness, hue_error, rgb_to_lab


def test_lab_matches_scikit_image():
    color = pytest.importorskip("skimage.color")
    x = torch.rand(2, 3, 6, 7) * 2 - 1
    ref = np.stack([color.rgb2lab(((im.permute(1, 2, 0).numpy() + 1) / 2).astype(np.float64)) for im in x])
    assert np.allclose(rgb_to_lab(x).permute(0, 2, 3, 1).numpy(), ref, atol=1e-4)


def test_hue_error_closed_forms():
    red, green = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([-1.0, 1.0, -1.0])
    img = lambda c: c.view(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    assert hue_error(img(red), img(red)) == pytest.approx(0.0, abs=1e-6)
    lab_r, lab_g = rgb_to_lab(img(red))[0, :, 0, 0].numpy(), rgb_to_lab(img(green))[0, :, 0, 0].numpy()
    angle = np.degrees(abs(np.arctan2(lab_r[2], lab_r[1]) - np.arctan2(lab_g[2], lab_g[1])))
    assert hue_error(img(green), img(red)) == pytest.approx(min(angle, 360 - angle), abs=1e-4)
    grey = torch.zeros(1, 3, 4, 4)
    assert hue_error(grey, img(red)) == 90.0                       # achromatic: a random hue's expected error
    # a washed-out red is scored on its hue, far from grey's 90 (mixing with grey in sRGB turns the Lab hue
    # by ~16 degrees); colourfulness is what measures the lost saturation
    pale = 0.3 * img(red) + 0.7 * grey
    assert hue_error(pale, img(red)) < 20 and colourfulness(pale) < 0.5 * colourfulness(img(red))
    with pytest.raises(ValueError, match="grey"):
        hue_error(img(red), grey)


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
    grey = torch.rand(2, 1, 8, 8).expand(2, 3, 8, 8) * 2 - 1
    assert colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
    # one flat colour: no spread, M = 0.3 * sqrt(mean_rg^2 + mean_yb^2), in 0..255 units
    x = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert colourfulness(x) == pytest.approx(0.3 * np.hypot(255, 127.5))
