"""Procedural shapes (ganforge.data.shapes): determinism, coverage, pixels agree with attributes."""
import numpy as np
import pytest

from ganforge.data.shapes import (ATTRIBUTES, PALETTE, attribute_labels, draw, position_name,
                                  render_shape_pair, render_shapes)
from ganforge.errors import GanforgeError

RES = 32


@pytest.fixture(scope="module")
def shapes():
    return render_shapes(600, resolution=RES, seed=0)


def coverage(image, attr):
    """Per-pixel fraction of shape colour (anti-aliased edges are partial): the projection of each
    pixel onto the background -> shape colour segment."""
    bg = np.array(PALETTE[attr["background"]], np.float32)
    fg = np.array(PALETTE[attr["color"]], np.float32)
    t = (image.astype(np.float32) - bg) @ (fg - bg) / ((fg - bg) @ (fg - bg))
    return np.clip(t, 0, 1)


def centroid(weights):
    ys, xs = np.mgrid[:weights.shape[0], :weights.shape[1]] + 0.5
    return (xs * weights).sum() / weights.sum(), (ys * weights).sum() / weights.sum()


def test_same_seed_same_bytes_other_seed_differs():
    a, attrs_a = render_shapes(20, resolution=RES, seed=7)
    b, attrs_b = render_shapes(20, resolution=RES, seed=7)
    c, _ = render_shapes(20, resolution=RES, seed=8)
    assert a.dtype == np.uint8 and a.shape == (20, RES, RES, 3)
    assert a.tobytes() == b.tobytes() and attrs_a == attrs_b
    assert a.tobytes() != c.tobytes()


def test_every_attribute_value_occurs_and_colors_differ(shapes):
    _, attrs = shapes
    for name, values in ATTRIBUTES.items():
        assert {a[name] for a in attrs} == set(values), name
    assert all(a["color"] != a["background"] for a in attrs)


def test_geometry_matches_names(shapes):
    _, attrs = shapes
    small = [a["size_px"] for a in attrs if a["size"] == "small"]
    large = [a["size_px"] for a in attrs if a["size"] == "large"]
    assert max(small) < min(large)
    assert len(set(small)) == len(small)                       # continuous jitter, not two sizes
    for a in attrs:
        assert position_name(a["cx"], a["cy"], RES) == a["position"]
        half = a["size_px"] / 2
        assert half <= a["cx"] <= RES - half and half <= a["cy"] <= RES - half
        if a["position"] != "center":
            assert (a["cy"] < RES / 2) == a["position"].startswith("top")
            assert (a["cx"] < RES / 2) == a["position"].endswith("left")


def test_shape_colour_inside_and_background_in_far_corner(shapes):
    images, attrs = shapes
    for image, a in zip(images, attrs):
        yy, xx = np.mgrid[:RES, :RES] + 0.5
        # a disc of radius size/8 around a point certainly inside: the centre, or for the apex-up
        # triangle the centroid of its bounding-box triangle, a third of the half-size below centre
        cy = a["cy"] + (a["size_px"] / 6 if a["kind"] == "triangle" else 0)
        inside = (xx - a["cx"]) ** 2 + (yy - cy) ** 2 <= (a["size_px"] / 8) ** 2
        mean = image[inside].astype(np.float32).mean(0)
        assert np.abs(mean - PALETTE[a["color"]]).max() < 12, (a, mean)
        # the corner opposite the shape's quadrant is never covered
        row = 0 if a["position"].startswith("bottom") else RES - 1
        col = 0 if a["position"].endswith("right") else RES - 1
        assert np.abs(image[row, col].astype(int) - PALETTE[a["background"]]).max() <= 3, a


def test_area_and_centroid_follow_the_kind():
    # area / size_px^2 is pi/4 for a circle, 1 for a square, 1/2 for a triangle of equal base and height
    expected = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}
    images, attrs = render_shapes(90, resolution=64, seed=1)
    for image, a in zip(images, attrs):
        cover = coverage(image, a)
        assert abs(cover.sum() / a["size_px"] ** 2 - expected[a["kind"]]) < 0.06, a
        x, y = centroid(cover)
        # the triangle's centroid sits a third of its half-height below the box centre
        dy = a["size_px"] / 6 if a["kind"] == "triangle" else 0.0
        assert abs(x - a["cx"]) < 0.3 and abs(y - a["cy"] - dy) < 0.3, a


def test_draw_rescales_geometry_to_another_resolution(shapes):
    images, attrs = shapes
    a = next(a for a in attrs if a["kind"] == "square" and a["size"] == "large")
    assert np.array_equal(draw(a), images[attrs.index(a)])
    cover = coverage(draw(a, 4 * RES), a)
    x, y = centroid(cover)
    assert abs(x - 4 * a["cx"]) < 0.5 and abs(y - 4 * a["cy"]) < 0.5
    assert abs(np.sqrt(cover.sum()) - 4 * a["size_px"]) < 1.0


def test_pair_shares_everything_but_the_kind():
    a, b, attrs_a, attrs_b = render_shape_pair(40, resolution=RES, seed=2)
    assert {x["kind"] for x in attrs_a} == {"circle"} and {x["kind"] for x in attrs_b} == {"square"}
    for xa, xb, ia, ib in zip(attrs_a, attrs_b, a, b):
        assert {k: v for k, v in xa.items() if k != "kind"} == {k: v for k, v in xb.items() if k != "kind"}
        assert np.array_equal(ia[0, 0], ib[0, 0]) or np.array_equal(ia[-1, -1], ib[-1, -1])
        ratio = coverage(ib, xb).sum() / coverage(ia, xa).sum()
        assert abs(ratio - 4 / np.pi) < 0.1                       # square / inscribed circle
    with pytest.raises(GanforgeError, match="two different kinds"):
        render_shape_pair(2, kinds=("circle", "circle"))


def test_attribute_labels_index_attributes(shapes):
    _, attrs = shapes
    labels = attribute_labels(attrs)
    assert set(labels) == set(ATTRIBUTES)
    for name, y in labels.items():
        assert y.dtype == np.int64 and y.shape == (len(attrs),)
        assert [ATTRIBUTES[name][i] for i in y] == [a[name] for a in attrs]
    with pytest.raises(GanforgeError, match="unknown color"):
        attribute_labels([dict(attrs[0], color="teal")])


def test_bad_arguments_name_the_fix():
    with pytest.raises(GanforgeError, match="unknown kinds"):
        render_shapes(2, kinds=("hexagon",))
    with pytest.raises(GanforgeError, match="resolution"):
        render_shapes(2, resolution=4)
    only_circles, attrs = render_shapes(10, kinds=("circle",))
    assert {a["kind"] for a in attrs} == {"circle"}
