"""Synthetic font digits (ganforge.data.fonts): determinism, load_digits' value range and framing,
and realism against a classifier fit on the real digits."""
import os

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ganforge.data.fonts import font_paths, render_font_digits
from ganforge.errors import GanforgeError


@pytest.fixture(scope="module")
def rendered():
    return render_font_digits(600, seed=0)


def test_same_seed_same_bytes_other_seed_differs(rendered):
    images, labels = render_font_digits(60, seed=0)
    again, labels_again = render_font_digits(60, seed=0)
    other, _ = render_font_digits(60, seed=1)
    assert images.tobytes() == again.tobytes() and np.array_equal(labels, labels_again)
    assert images.tobytes() != other.tobytes()


def test_labels_balanced_and_values_like_load_digits(rendered):
    images, labels = rendered
    assert images.dtype == np.float32 and images.shape == (600, 8, 8) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [60] * 10
    assert np.ptp(np.bincount(render_font_digits(23)[1], minlength=10)) <= 1
    assert images.min() == 0 and images.max() == 16 and np.array_equal(images, np.round(images))


def test_framing_matches_load_digits(rendered):
    images, _ = rendered
    real = load_digits().images
    # optdigits scales each digit to the full box height: ink in the first and the last row
    assert ((images[:, 0] > 0).any(1) & (images[:, -1] > 0).any(1)).mean() > 0.97
    # ... and keeps its aspect, centred: the outer columns are almost always empty
    assert (images[:, :, [0, -1]] > 0).any(axis=(1, 2)).mean() < 0.2
    # overall ink statistics within 15% of the real set's
    for stat in (np.mean, lambda x: (x == 0).mean(), lambda x: (x == 16).mean()):
        assert abs(stat(images) - stat(real)) < 0.15 * stat(real)


def test_nearest_centroid_fit_on_real_digits_reads_font_digits(rendered):
    images, labels = rendered
    real = load_digits()
    centroids = np.stack([real.data[real.target == k].mean(0) for k in range(10)])
    d = ((images.reshape(len(images), 1, 64) - centroids[None]) ** 2).sum(-1)
    accuracy = (d.argmin(1) == labels).mean()
    print(f"nearest-centroid (fit on load_digits) accuracy on font digits: {accuracy:.3f}")
    assert accuracy > 0.5


def test_fonts_are_text_fonts():
    names = [os.path.basename(p) for p in font_paths()]
    assert "DejaVuSans.ttf" in names and "DejaVuSerif-Bold.ttf" in names
    assert not any(s in n for n in names for s in ("cmsy", "cmex", "STIXSiz", "LastResort"))


def test_other_resolution_and_bad_arguments():
    images, _ = render_font_digits(10, resolution=16)
    assert images.shape == (10, 16, 16) and images.max() <= 16
    with pytest.raises(GanforgeError, match="resolution"):
        render_font_digits(4, resolution=2)
    with pytest.raises(GanforgeError, match="n=-1"):
        render_font_digits(-1)
