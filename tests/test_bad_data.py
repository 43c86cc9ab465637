"""Bad input in `folder:` and `csv:` data (issue 12, part 4): each fault is refused or read right, not trained on."""
import json

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main
from ganforge.data import resolve
from ganforge.data.tabular import decode_rows
from ganforge.errors import GanforgeError

TINY = ["steps=2", "batch_size=4", "sample_every=2", "checkpoint_every=2", "log_every=1", "num_samples=4"]
# a 16 x 16 ramp over the whole 16-bit range: the 8-bit reference is value / 257
RAMP16 = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
RAMP8 = np.round(RAMP16 / 257.0).astype(np.uint8)


def _load_one(folder):
    data, _ = resolve(f"folder:{folder}", resolution=16)
    assert data.x.shape == (1, 1, 16, 16)
    return data.x[0, 0].numpy().astype(int)


@pytest.mark.parametrize("mode", ["I;16 png", "I;16 tif", "I tif", "I 32-bit tif", "F tif"])
def test_deep_grey_images_load_like_their_8bit_version(tmp_path, mode):
    (tmp_path / "ref").mkdir()
    Image.fromarray(RAMP8).save(tmp_path / "ref" / "a.png")
    if mode.startswith("I;16"):
        im = Image.fromarray(RAMP16)                                   # numpy uint16 -> mode I;16
    elif mode == "I tif":
        im = Image.fromarray(RAMP16.astype(np.int32))                  # 16-bit samples in mode I (old Pillow PNGs)
    elif mode == "I 32-bit tif":
        im = Image.fromarray(np.round(RAMP16 / 65535.0 * (2 ** 31 - 1)).astype(np.int32))
    else:
        im = Image.fromarray((RAMP16 / 65535.0).astype(np.float32))    # mode F, 0..1
    (tmp_path / "deep").mkdir()
    path = tmp_path / "deep" / ("a.png" if mode.endswith("png") else "a.tif")
    im.save(path)
    with Image.open(path) as check:                                    # the file really holds that mode
        assert check.mode == mode.split()[0]
    deep, ref = _load_one(tmp_path / "deep"), _load_one(tmp_path / "ref")
    assert np.abs(deep - ref).max() <= 1
    assert (deep == 255).mean() < 0.01          # was 99.6% white: convert("L") clipped at 255


def test_float_image_outside_0_1_is_refused_naming_it(tmp_path):
    Image.fromarray(np.full((8, 8), 7.5, dtype=np.float32)).save(tmp_path / "depth.tif")
    with pytest.raises(GanforgeError, match=r"image '.*depth.tif' \(mode F\) has values outside 0..1.*8- or 16-bit"):
        resolve(f"folder:{tmp_path}", resolution=8)


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_delimiter_is_detected(tmp_path, sep):
    p = tmp_path / "t.csv"
    rows = [["age", "income", "city"]] + [[str(20 + i), f"{1000 + i * 0.5}", "paris rome".split()[i % 2]]
                                          for i in range(30)]
    p.write_text("".join(sep.join(r) + "\n" for r in rows))
    data, info = resolve(f"csv:{p}")
    cols = info.extra["columns"]
    assert [(c["name"], c["type"]) for c in cols] == [("age", "numeric"), ("income", "numeric"),
                                                      ("city", "categorical")]
    assert cols[2]["categories"] == ["paris", "rome"] and info.shape == (4,)
    age, income, city = decode_rows(data.x, cols)[3]
    assert (age, city) == (23, "rome") and income == pytest.approx(1001.5, abs=1e-3)


def test_csv_id_column_is_refused_naming_it(tmp_path):
    p = tmp_path / "ids.csv"
    p.write_text("user,score\n" + "".join(f"u{i:05d},{i % 7}\n" for i in range(60)))
    with pytest.raises(GanforgeError, match="column 'user' has 60 distinct text values in 60 rows.*"
                                            "drop the column or make it numeric"):
        resolve(f"csv:{p}")
    # the 1,000 bound: 1,001 values in 20,000 rows is only 5% of the rows, still refused
    p.write_text("code,x\n" + "".join(f"c{i % 1001},{i}\n" for i in range(20_000)))
    with pytest.raises(GanforgeError, match="column 'code' has 1001 distinct"):
        resolve(f"csv:{p}")
    # a real category of 5 levels in 60 rows loads
    p.write_text("kind,x\n" + "".join(f"k{i % 5},{i}\n" for i in range(60)))
    _, info = resolve(f"csv:{p}")
    assert info.extra["columns"][0]["categories"] == ["k0", "k1", "k2", "k3", "k4"]


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e999"])
def test_csv_non_finite_value_is_refused_with_line_and_column(tmp_path, value):
    p = tmp_path / "f.csv"
    p.write_text(f"a,b\n1,2\n3,{value}\n5,6\n")
    with pytest.raises(GanforgeError, match=f"non-finite value '{value}' in column 'b' at line 3"):
        resolve(f"csv:{p}")


def test_bad_csv_via_cli_is_one_line_and_exit_2(tmp_path, capsys):
    p = tmp_path / "f.csv"
    p.write_text("a;b\n1;2\n-inf;3\n")
    assert main(["train", "gan", "--data", f"csv:{p}", "--out", str(tmp_path / "r"), "--quiet", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge: error: ") and err.count("\n") == 1
    assert "non-finite value '-inf' in column 'a' at line 3" in err


def _folder_with_broken(root):
    root.mkdir()
    for i in range(2):
        Image.new("L", (8, 8), i * 100).save(root / f"ok{i}.png")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "cut.jpg").write_bytes(b"\xff\xd8\xff garbage")


def test_skip_bad_names_the_skipped_files(tmp_path):
    _folder_with_broken(tmp_path / "imgs")
    data, _ = resolve(f"folder:{tmp_path / 'imgs'}", resolution=8, skip_bad=True)
    assert len(data) == 2 and data.skipped == 2
    assert data.skipped_names == [str(tmp_path / "imgs" / "broken.png"), str(tmp_path / "imgs" / "cut.jpg")]


def test_skip_bad_names_reach_the_summary_and_the_report(tmp_path, capsys):
    from ganforge.api import train
    _folder_with_broken(tmp_path / "imgs")
    spec = f"folder:{tmp_path / 'imgs'}"
    s = train("dcgan", out=tmp_path / "a", progress=False, data=spec, skip_bad=True, resolution=8,
              **{k: int(v) for k, v in (kv.split("=") for kv in TINY)})
    assert s["skipped_images"] == 2 and [n.rsplit("/", 1)[1] for n in s["skipped_files"]] == ["broken.png", "cut.jpg"]
    written = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert written["skipped_images"] == 2 and written["skipped_files"] == s["skipped_files"]
    capsys.readouterr()
    assert main(["train", "dcgan", "--data", spec, "--out", str(tmp_path / "b"), "--quiet", "skip_bad=true",
                 "resolution=8", *TINY]) == 0
    out = capsys.readouterr().out
    assert f"skipped 2 unreadable images: {tmp_path / 'imgs' / 'broken.png'}, {tmp_path / 'imgs' / 'cut.jpg'}" in out


def test_gif_and_tiff_are_read_and_other_files_named(tmp_path, capsys):
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue])    # two frames: the first is read
    blue.save(tmp_path / "b.tif")
    red.save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "photo.heic").write_bytes(b"\x00" * 16)
    (tmp_path / ".DS_Store").write_bytes(b"\x00")
    data, info = resolve(f"folder:{tmp_path}", resolution=8)
    assert len(data) == 3 and info.shape == (3, 8, 8)
    gif = data.x[0, :, 4, 4].tolist()                 # files sorted: anim.gif, b.tif, c.png
    assert gif[0] > 200 and gif[2] < 50 and data.x[1, 2, 4, 4] > 200
    err = capsys.readouterr().err
    assert "ignored 2 files" in err and "notes.txt" in err and "photo.heic" in err and ".DS_Store" not in err


def test_folder_of_unknown_files_names_one_in_the_error(tmp_path, capsys):
    (tmp_path / "photo.heic").write_bytes(b"\x00" * 16)
    assert main(["train", "dcgan", "--data", f"folder:{tmp_path}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge: error: ") and err.count("\n") == 1
    assert "holds no images" in err and "'photo.heic'" in err
