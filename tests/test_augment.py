"""Facts about DiffAugment (augment.py): shapes, differentiability, each policy's effect, determinism."""
import pytest
import torch

from ganforge.augment import POLICIES, diff_augment, parse_policy
from ganforge.errors import GanforgeError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(4, 1, 8, 8), (4, 3, 16, 16), (3, 3, 12, 20)])
@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shape_kept_and_gradient_reaches_input(shape, policy):
    x = torch.rand(shape, generator=gen(1)).mul(2).sub(1).requires_grad_(True)
    out = diff_augment(x, policy, generator=gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    (out * torch.randn(shape, generator=gen(2))).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_empty_policy_is_identity():
    x = torch.randn(2, 3, 8, 8)
    assert diff_augment(x, "") is x
    assert diff_augment(torch.randn(5, 2), "") is not None  # point data passes through with no policy


def test_unknown_policy_names_the_valid_ones():
    with pytest.raises(ValueError) as err:
        diff_augment(torch.zeros(1, 3, 8, 8), "color,rotate")
    assert "rotate" in str(err.value) and all(p in str(err.value) for p in POLICIES)
    assert isinstance(err.value, GanforgeError)  # so the CLI reports it as a user error
    assert parse_policy(" color , cutout ") == ("color", "cutout")


def test_same_generator_seed_same_output_different_seed_different():
    x = torch.randn(6, 3, 16, 16, generator=gen(5))
    a = diff_augment(x, generator=gen(7))
    b = diff_augment(x, generator=gen(7))
    c = diff_augment(x, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_translation_shifts_by_at_most_an_eighth_with_zero_fill():
    n, h, w = 32, 16, 24
    x = torch.arange(1.0, h * w + 1).view(1, 1, h, w).repeat(n, 2, 1, 1)  # every pixel distinct, nonzero
    out = diff_augment(x, "translation", generator=gen(3))
    seen_shifts = set()
    for i in range(n):
        matches = []
        for ty in range(-2, 3):  # 16/8 = 2
            for tx in range(-3, 4):  # 24/8 = 3
                expected = torch.zeros(2, h, w)
                ys, xs = slice(max(0, -ty), min(h, h - ty)), slice(max(0, -tx), min(w, w - tx))
                expected[:, ys, xs] = x[i, :, max(0, ty):min(h, h + ty), max(0, tx):min(w, w + tx)]
                if torch.equal(out[i], expected):
                    matches.append((ty, tx))
        assert len(matches) == 1, f"sample {i} is not a zero-filled shift within range"
        seen_shifts.add(matches[0])
    assert len(seen_shifts) > 5  # shifts are drawn per sample


def test_translation_of_constant_image_zero_pads_a_border_band():
    x = torch.full((16, 1, 8, 8), 0.7)
    out = diff_augment(x, "translation", generator=gen(0))
    assert ((out == 0) | (out == x)).all()  # values are moved, never blended
    assert (out == 0).any()
    for img in out[:, 0]:
        kept = img != 0
        rows, cols = kept.any(1), kept.any(0)
        assert torch.equal(kept, rows[:, None] & cols[None, :])  # the kept region is one rectangle
        assert rows.sum() >= 7 and cols.sum() >= 7  # |shift| <= 8/8 = 1 per axis
        assert (rows[0] or rows[-1]) and (cols[0] or cols[-1])  # the zero band sits on one side only


def test_cutout_zeroes_one_clipped_square_of_half_size():
    x = torch.full((32, 3, 8, 8), -0.5)
    out = diff_augment(x, "cutout", generator=gen(0))
    areas = set()
    for img in out:
        cut = img[0] == 0
        assert torch.equal(img[:, ~cut], x[0][:, ~cut])  # everything else untouched
        assert (img[:, cut] == 0).all()  # all channels cut together
        rows, cols = cut.any(1), cut.any(0)
        assert torch.equal(cut, rows[:, None] & cols[None, :])  # a rectangle
        assert 2 <= rows.sum() <= 4 and 2 <= cols.sum() <= 4  # 8/2 = 4, clipped to at least half
        areas.add(int(cut.sum()))
    assert 16 in areas and len(areas) > 1  # full squares inside, clipped ones at the border


def test_color_on_constant_gray_image_only_shifts_brightness():
    # saturation and contrast scale deviations from means, which are zero for a constant gray image
    x = torch.full((64, 3, 4, 4), 0.2)
    out = diff_augment(x, "color", generator=gen(0))
    shift = out - x
    torch.testing.assert_close(shift, shift[:, :1, :1, :1].expand_as(shift))
    assert shift.abs().max() <= 0.5
    assert shift.max() > 0.3 and shift.min() < -0.3  # U(-0.5, 0.5), per sample


def test_color_saturation_and_contrast_ranges():
    # a two-valued image: contrast multiplies deviations by U(0.5, 1.5), saturation by U(0, 2)
    x = torch.zeros(128, 1, 2, 2)
    x[:, :, 0] = 1.0
    x[:, :, 1] = -1.0
    out = diff_augment(x, "color", generator=gen(1))
    spread = (out[:, 0, 0, 0] - out[:, 0, 1, 0]) / 2  # 1 channel: saturation is the identity
    assert spread.min() >= 0.5 - 1e-6 and spread.max() <= 1.5 + 1e-6
    assert spread.max() - spread.min() > 0.8


def test_non_image_input_with_a_policy_is_a_clear_error():
    with pytest.raises(GanforgeError, match="N x C x H x W"):
        diff_augment(torch.randn(5, 2), "translation")
