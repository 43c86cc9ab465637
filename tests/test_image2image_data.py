"""Image-to-image data specs: pix2pix's paired A|B folders, CycleGAN's trainA/trainB folders, the offline
photo tasks and the shapeswap task with its scores."""
import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import resolve
from ganforge.data import photos
from ganforge.data.base import UnpairedData
from ganforge.data.images import set_channels
from ganforge.data.photos import downscale, sobel_edges
from ganforge.data.shapeswap import parse_shapeswap, shapeswap_test_set
from ganforge.metrics.shapeswap import shapeswap_scores
from ganforge.data.shapes import draw
from ganforge.errors import GanforgeError


def side_by_side(path, left, right, size=(8, 8)):
    """Write an A|B image: `left` and `right` are RGB tuples filling each half."""
    w, h = size
    a = np.zeros((h, 2 * w, 3), np.uint8)
    a[:, :w], a[:, w:] = left, right
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


@pytest.fixture
def paired_dir(tmp_path):
    root = tmp_path / "facades"
    for i in range(3):
        side_by_side(root / "train" / f"{i}.png",
                     (10 * i, 0, 0), (0, 200, 10 * i))
    side_by_side(root / "val" / "0.png", (255, 255, 255), (0, 0, 0))
    return root


def unpaired_dir(tmp_path, n_a=3, n_b=5, size=8):
    root = tmp_path / "horse2zebra"
    for d, n, v in (("A", n_a, 0), ("B", n_b, 100)):
        for split in ("train", "test"):
            (root / f"{split}{d}").mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((size, size, 3), v + i, np.uint8)).save(root / f"{split}{d}" / f"{i}.png")
    return root


# -------------------------------------------------------------------------------------------- paired:DIR

def test_paired_reads_left_half_as_a_and_right_half_as_b(paired_dir):
    data, info = resolve(f"paired:{paired_dir}")
    assert len(data) == 3 and info.shape == (3, 8, 8) and info.extra["cond_shape"] == [3, 8, 8]
    b = data.batch(torch.arange(3))
    to_u8 = lambda t: ((t + 1) * 127.5).round()   # noqa: E731
    # files sort as 0, 1, 2: A = (10 i, 0, 0), B = (0, 200, 10 i)
    assert to_u8(b["cond"])[:, 0, 0, 0].tolist() == [0, 10, 20]
    assert to_u8(b["cond"])[:, 1].abs().max() == 0
    assert to_u8(b["real"])[:, 1, 0, 0].tolist() == [200] * 3
    assert to_u8(b["real"])[:, 2, 0, 0].tolist() == [0, 10, 20]


def test_paired_test_split_falls_back_to_val_and_resolution_resizes(paired_dir):
    data, info = resolve(f"paired:{paired_dir}", split="test", resolution=16)
    assert len(data) == 1 and info.shape == (3, 16, 16) and info.extra["folder"] == "val"
    assert data.batch(torch.arange(1))["cond"].min() == 1.0   # the white A half


def test_paired_grey_files_give_one_channel_and_channels_converts(tmp_path):
    root = tmp_path / "p"
    (root / "train").mkdir(parents=True)
    Image.fromarray(np.full((4, 8), 77, np.uint8)).save(root / "train" / "g.png")
    _, info = resolve(f"paired:{root}")
    assert info.shape == (1, 4, 4)
    _, info = resolve(f"paired:{root}", channels=3)
    assert info.shape == (3, 4, 4) and info.extra["cond_shape"] == [3, 4, 4]


def test_paired_default_resolution_is_256_when_halves_are_not_one_square(tmp_path):
    root = tmp_path / "p"
    side_by_side(root / "train" / "a.png", (0, 0, 0), (1, 1, 1), size=(8, 4))
    assert resolve(f"paired:{root}")[1].shape == (3, 256, 256)


def test_paired_errors_name_the_thing_and_the_fix(tmp_path, paired_dir):
    with pytest.raises(GanforgeError, match="does not exist"):
        resolve(f"paired:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanforgeError, match="no train/ sub-folder"):
        resolve(f"paired:{tmp_path / 'empty'}")
    with pytest.raises(GanforgeError, match="no test/ or val/"):
        resolve(f"paired:{tmp_path / 'empty'}", split="test")
    (tmp_path / "empty" / "train").mkdir()
    with pytest.raises(GanforgeError, match="holds no images"):
        resolve(f"paired:{tmp_path / 'empty'}")
    Image.fromarray(np.zeros((4, 7, 3), np.uint8)).save(paired_dir / "train" / "odd.png")
    with pytest.raises(GanforgeError, match="odd.png.*even width"):
        resolve(f"paired:{paired_dir}")
    (paired_dir / "train" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(GanforgeError, match="bad.png.*skip_bad"):
        resolve(f"paired:{paired_dir}")
    data, _ = resolve(f"paired:{paired_dir}", skip_bad=True)
    assert len(data) == 3 and data.skipped == 2
    with pytest.raises(GanforgeError, match="paired:DIR"):
        resolve("paired")


# ------------------------------------------------------------------------------------------ unpaired:DIR

def test_unpaired_reads_both_domains_and_covers_every_image_each_epoch(tmp_path):
    root = unpaired_dir(tmp_path, n_a=3, n_b=5)
    data, info = resolve(f"unpaired:{root}")
    assert len(data) == 5 and info.extra["sizes"] == [3, 5] and info.shape == (3, 8, 8)
    b = data.batch(torch.arange(5))
    a_vals = sorted({int(v) for v in ((b["cond"][:, 0, 0, 0] + 1) * 127.5).round()})
    b_vals = sorted(int(v) for v in ((b["real"][:, 0, 0, 0] + 1) * 127.5).round())
    assert a_vals == [0, 1, 2] and b_vals == [100, 101, 102, 103, 104]
    # the pairing is a seeded permutation, not the files' order
    again, _ = resolve(f"unpaired:{root}")
    assert torch.equal(again.index_b, data.index_b)
    assert not torch.equal(UnpairedData(data.a, data.x, seed=1).index_b, data.index_b)
    test, _ = resolve(f"unpaired:{root}", split="test", resolution=4)
    assert test.x.shape[-1] == 4


def test_unpaired_errors(tmp_path):
    root = unpaired_dir(tmp_path)
    with pytest.raises(GanforgeError, match="does not exist"):
        resolve(f"unpaired:{tmp_path / 'nope'}")
    for f in (root / "testB").iterdir():
        f.unlink()
    with pytest.raises(GanforgeError, match="testB.*holds no images"):
        resolve(f"unpaired:{root}", split="test")
    (root / "testB").rmdir()
    with pytest.raises(GanforgeError, match="no testB/ sub-folder.*found: testA, trainA, trainB"):
        resolve(f"unpaired:{root}", split="test")
    with pytest.raises(GanforgeError, match="unpaired:DIR"):
        resolve("unpaired")


# ------------------------------------------------------------------------------------------- photos:TASK

@pytest.mark.parametrize("task,cond", [("edges2photo", (1, 16, 16)), ("gray2color", (1, 16, 16)),
                                       ("sr4", (3, 4, 4)), ("sr2", (3, 8, 8))])
def test_photo_tasks_shapes_and_held_out_photos(task, cond):
    train, info = resolve(f"photos:{task}", resolution=16)
    test, test_info = resolve(f"photos:{task}", split="test", resolution=16)
    assert info.shape == (3, 16, 16) and tuple(info.extra["cond_shape"]) == cond
    assert not set(info.extra["photos"]) & set(test_info.extra["photos"])   # whole photos held out
    assert len(test) < len(train)
    b = test.batch(torch.arange(len(test)))
    assert b["real"].shape[1:] == (3, 16, 16) and b["cond"].shape[1:] == cond


def test_super_resolution_is_tested_on_every_other_offline_photograph():
    _, sr = resolve("photos:sr4", split="test", resolution=16)
    _, train = resolve("photos:sr4", resolution=16)
    _, colour = resolve("photos:gray2color", split="test", resolution=16)
    assert sr.extra["photos"] == [f"{s}:{n}" for s, n in photos.SR_TEST_PHOTOS] and len(sr.extra["photos"]) == 15
    assert colour.extra["photos"] == [f"{s}:{n}" for s, n in photos.TEST_PHOTOS]    # the other tasks: as before
    assert not set(sr.extra["photos"]) & set(train.extra["photos"])
    names = [n for _, n in photos.TRAIN_PHOTOS + photos.SR_TEST_PHOTOS]
    assert len(set(names)) == len(names) and "motorcycle_right.png" not in names     # the training photo's twin
    sr_train, _ = resolve("photos:sr4", resolution=32)
    assert len(sr_train) == photos.SR_MAX_CROPS > 2 * len(resolve("photos:gray2color", resolution=32)[0])
    grey = dict(photos.load_photos("test", "sr4"))["skimage:camera.png"]
    assert grey.shape[2] == 3 and (grey[..., 0] == grey[..., 2]).all()                 # grey as 3 equal channels


def test_photo_task_inputs_are_functions_of_the_targets():
    data, _ = resolve("photos:gray2color", split="test", resolution=16)
    assert torch.equal(data.a, set_channels(data.x, 1))           # the input is the target's luma
    data, info = resolve("photos:sr4", split="test", resolution=16)
    assert torch.equal(data.a, downscale(data.x, 4)) and info.extra["scale"] == 4
    data, _ = resolve("photos:edges2photo", split="test", resolution=16)
    assert set(data.a.unique().tolist()) == {0, 255}                   # binary edge maps


def test_photos_degrade_to_scikit_learn_photos_without_scikit_image(monkeypatch):
    real = photos._photo_path
    monkeypatch.setattr(photos, "_photo_path", lambda source, name: None if source == "skimage" else real(source, name))
    assert [n for n, _ in photos.load_photos("train")] == ["sklearn:china.jpg"]
    assert [n for n, _ in photos.load_photos("test")] == ["sklearn:flower.jpg"]
    monkeypatch.setattr(photos, "_photo_path", lambda source, name: None)
    with pytest.raises(GanforgeError, match="no bundled photos"):
        photos.load_photos("train")


def test_photo_task_errors():
    with pytest.raises(GanforgeError, match="unknown photos task 'sr3'.*photos:sr4"):
        resolve("photos:sr3")
    with pytest.raises(GanforgeError, match="divisible by 4"):
        resolve("photos:sr4", resolution=18)
    with pytest.raises(GanforgeError, match="drop channels=1"):
        resolve("photos:gray2color", channels=1)


def test_sobel_edges_mark_a_step_and_nothing_else():
    x = torch.zeros(3, 32, 32, dtype=torch.uint8)
    x[:, :, 16:] = 200                                      # a vertical step between columns 15 and 16
    edges = sobel_edges(x)[0]
    cols = (edges == 0).any(0).nonzero().flatten().tolist()
    assert cols and min(cols) >= 13 and max(cols) <= 18     # only near the step


# ------------------------------------------------------------------------------------------- shapeswap

def test_shapeswap_train_is_unpaired_and_test_is_aligned():
    train, info = resolve("shapeswap:circles2squares", resolution=16)
    assert info.extra["kinds"] == ["circle", "square"] and info.extra["paired"] is False
    assert isinstance(train, UnpairedData)
    a, b, attrs = shapeswap_test_set("circles2squares", 16, n=8)
    test, test_info = resolve("shapeswap:circles2squares", split="test", resolution=16)
    assert test_info.extra["paired"] is True and torch.equal(test.a[:8], a) and torch.equal(test.x[:8], b)
    for i, attr in enumerate(attrs):   # B is A's attributes drawn as a square
        assert attr["kind"] == "square" and attr["source_kind"] == "circle"
        assert np.array_equal(draw(attr, 16), b[i].permute(1, 2, 0).numpy())
        assert np.array_equal(draw(dict(attr, kind="circle"), 16), a[i].permute(1, 2, 0).numpy())


def test_shapeswap_scores_oracle_identity_and_recoloured():
    a, b, attrs = shapeswap_test_set("circles2squares", 32, n=16)
    to_f = lambda t: t.float() / 127.5 - 1   # noqa: E731
    oracle = shapeswap_scores(to_f(b), attrs)
    assert oracle == {"kind_acc": 1.0, "color_acc": 1.0, "background_acc": 1.0, "swap_acc": 1.0, "l1": 0.0}
    identity = shapeswap_scores(to_f(a), attrs)
    assert identity["kind_acc"] == 0.0 and identity["color_acc"] == 1.0 and identity["background_acc"] == 1.0
    assert identity["swap_acc"] == 0.0
    assert identity["l1"] > 0
    swapped = shapeswap_scores(to_f(b).flip(1), attrs)     # RGB -> BGR: colours change, shapes do not
    assert swapped["color_acc"] < 0.7 and swapped["background_acc"] < 0.7
    noise = shapeswap_scores(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1, attrs)
    assert noise["kind_acc"] < 0.1 and noise["color_acc"] < 0.3 and noise["swap_acc"] == 0   # not a square
    assert swapped["swap_acc"] < 0.5


def test_shapeswap_task_names():
    assert parse_shapeswap("squares2triangles") == ("square", "triangle")
    for bad in ("circles2circles", "circles", "hexagons2squares"):
        with pytest.raises(GanforgeError, match="shapeswap:circles2squares"):
            resolve(f"shapeswap:{bad}")
    with pytest.raises(GanforgeError, match="colour"):
        resolve("shapeswap:circles2squares", channels=1)
