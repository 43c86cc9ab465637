import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import Batches, resolve
from ganforge.data import archives
from ganforge.data.tabular import decode_rows
from ganforge.errors import GanforgeError


def test_toy_specs_follow_the_pacgan_protocol():
    data, info = resolve("toy:ring")
    assert len(data) == 100_000 and info.shape == (2,) and info.extra["std"] == 0.01
    means = torch.tensor(info.extra["means"])
    assert len(means) == 8 and torch.allclose(means.norm(dim=1), torch.ones(8))
    d = torch.cdist(data.x[:1000], means).min(1).values
    assert d.max() < 0.06
    _, grid = resolve("toy:grid")
    assert len(grid.extra["means"]) == 25 and grid.extra["std"] == 0.05
    g1, info1 = resolve("toy:gauss1d")
    assert abs(g1.x.mean().item() - 2.0) < 0.01 and abs(g1.x.std().item() - 0.5) < 0.01
    with pytest.raises(GanforgeError, match="unknown toy data 'rng'.*toy:ring"):
        resolve("toy:rng")


def test_unknown_spec_suggests():
    with pytest.raises(GanforgeError, match="unknown data spec 'digts'.*did you mean 'digits'"):
        resolve("digts")
    with pytest.raises(GanforgeError, match="needs a path: folder:PATH"):
        resolve("folder")


def test_digits_split_resolution_channels():
    tr, info = resolve("digits")
    te, _ = resolve("digits", split="test")
    assert (len(tr), len(te)) == (1437, 360) and info.num_classes == 10
    x = tr.batch(torch.arange(4))["real"]
    assert x.shape == (4, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    up, info32 = resolve("digits", resolution=32, channels=3)
    assert info32.shape == (3, 32, 32) and up.x.shape[1:] == (3, 32, 32)
    st, sinfo = resolve("digits:stacked")
    assert sinfo.shape == (3, 8, 8) and sinfo.num_classes == 1000 and len(set(st.y.tolist())) > 900


def test_csv_roundtrip_and_missing_values(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("age,income,city\n30,1000.5,paris\n40,2000.0,rome\n50,1500.25,paris\n")
    data, info = resolve(f"csv:{p}")
    assert info.kind == "table" and info.shape == (4,)   # 2 numeric + 2 one-hot
    assert torch.allclose(data.x[:, 0].mean(), torch.tensor(0.0), atol=1e-6)
    rows = decode_rows(data.x, info.extra["columns"])
    assert rows == [[30, 1000.5, "paris"], [40, 2000.0, "rome"], [50, 1500.25, "paris"]]
    (tmp_path / "m.csv").write_text("a,b\n1,2\n3,\n")
    with pytest.raises(GanforgeError, match="missing value in column 'b' at line 3"):
        resolve(f"csv:{tmp_path / 'm.csv'}")
    with pytest.raises(GanforgeError, match="does not exist"):
        resolve(f"csv:{tmp_path / 'nope.csv'}")


def _write_images(root, n=3, size=(20, 12), mode="RGB"):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new(mode, size, color=(i * 40, 10, 200) if mode == "RGB" else i * 40).save(root / f"{i}.png")


def test_folder_labels_resize_and_channels(tmp_path):
    _write_images(tmp_path / "cats", 3)
    _write_images(tmp_path / "dogs", 2, mode="L")
    data, info = resolve(f"folder:{tmp_path}", resolution=16)
    assert info.shape == (3, 16, 16) and info.class_names == ["cats", "dogs"] and info.num_classes == 2
    assert data.y.tolist() == [0, 0, 0, 1, 1]
    gray, ginfo = resolve(f"folder:{tmp_path}", resolution=8, channels=1)
    assert ginfo.shape == (1, 8, 8)
    flat = tmp_path / "flat"
    _write_images(flat, 2)
    d2, i2 = resolve(f"folder:{flat}", resolution=8)
    assert d2.y is None and i2.num_classes == 0


def test_folder_errors(tmp_path):
    with pytest.raises(GanforgeError, match="does not exist"):
        resolve(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanforgeError, match="holds no images"):
        resolve(f"folder:{tmp_path / 'empty'}")
    _write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(GanforgeError, match=r"cannot read image '.*broken.png'.*skip_bad=true"):
        resolve(f"folder:{tmp_path / 'imgs'}", resolution=8)
    data, _ = resolve(f"folder:{tmp_path / 'imgs'}", resolution=8, skip_bad=True)
    assert len(data) == 2 and data.skipped == 1


def test_batches_are_seeded_resumable_and_sharded():
    data, _ = resolve("toy:ring")
    a = Batches(data, 32, seed=3, device=torch.device("cpu"))
    first = [next(a)["real"] for _ in range(5)]
    state = a.state_dict()
    nxt = next(a)["real"]
    b = Batches(data, 32, seed=3, device=torch.device("cpu"))
    b.load_state_dict(state)
    assert torch.equal(next(b)["real"], nxt)
    c = Batches(data, 32, seed=3, device=torch.device("cpu"))
    assert all(torch.equal(x, next(c)["real"]) for x in first)
    # two ranks draw disjoint halves of the same epoch
    r0 = Batches(data, 32, seed=3, device=torch.device("cpu"), rank=0, world_size=2)
    r1 = Batches(data, 32, seed=3, device=torch.device("cpu"), rank=1, world_size=2)
    assert not torch.equal(next(r0)["real"], next(r1)["real"])
    tiny = Batches(type(data)(data.x[:5]), 8, seed=0, device=torch.device("cpu"))
    assert next(tiny)["real"].shape == (8, 2)   # a batch larger than the data set still fills


def _idx(array, magic_dims):
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def _write_mnist(root, n=6, gz=True):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {}
    for prefix in ("train", "t10k"):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, tag in (("images", imgs, "idx3"), ("labels", labels, "idx1")):
            name = f"{prefix}-{kind}-{tag}-ubyte"
            raw = _idx(arr, None)
            if gz:
                raw = gzip.compress(raw)
                name += ".gz"
            (root / name).write_bytes(raw)
            files[name] = raw
    return files


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    _write_mnist(tmp_path, gz=gz)
    data, info = resolve(f"mnist:{tmp_path}", resolution=32)
    assert info.shape == (1, 32, 32) and len(data) == 6 and data.y.tolist() == [0, 1, 2, 3, 4, 5]
    test, _ = resolve(f"mnist:{tmp_path}", split="test")
    assert test.x.shape == (6, 1, 28, 28)


def test_mnist_missing_and_truncated(tmp_path):
    with pytest.raises(GanforgeError, match="lacks train-images-idx3-ubyte.*download=true"):
        resolve(f"mnist:{tmp_path}")
    _write_mnist(tmp_path, gz=False)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(GanforgeError, match="truncated"):
        resolve(f"mnist:{tmp_path}")


def _write_cifar(root, n=4):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        (base / name).write_bytes(pickle.dumps(batch))
    return base


def test_cifar10_pickles_and_safe_unpickling(tmp_path):
    base = _write_cifar(tmp_path)
    data, info = resolve(f"cifar10:{tmp_path}")
    assert len(data) == 20 and info.shape == (3, 32, 32) and info.class_names[0] == "airplane"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (base / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(GanforgeError, match="cannot read CIFAR-10 batch.*refusing to load builtins.print"):
        resolve(f"cifar10:{tmp_path}", split="test")


@pytest.fixture
def http_dir(local_server):
    """(the folder tmp_path/serve, its base URL) served on 127.0.0.1 (conftest.local_server)."""
    base, served, _ = local_server
    return served, base + "/"


def test_mnist_download_from_a_local_mirror(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    files = _write_mnist(served)
    sums = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    monkeypatch.setattr(archives, "MNIST_URLS", ("http://127.0.0.1:9/dead/", url))   # first mirror fails
    monkeypatch.setattr(archives, "MNIST_MD5", sums)
    data, _ = resolve(f"mnist:{tmp_path / 'dl'}", download=True)
    assert len(data) == 6 and (tmp_path / "dl" / "train-images-idx3-ubyte.gz").is_file()


def test_download_with_a_bad_checksum_leaves_nothing(tmp_path, http_dir):
    served, url = http_dir
    (served / "f.bin").write_bytes(b"tampered")
    with pytest.raises(GanforgeError, match="wrong checksum"):
        archives.download(url + "f.bin", tmp_path / "out" / "f.bin", md5sum="0" * 32)
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(GanforgeError, match="could not download"):
        archives.download(url + "missing.bin", tmp_path / "out" / "m.bin", md5sum=None)


def test_cifar10_download_and_extract(tmp_path, http_dir):
    import tarfile
    served, url = http_dir
    src = tmp_path / "src"
    _write_cifar(src)
    with tarfile.open(served / "c.tar.gz", "w:gz") as t:
        t.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5((served / "c.tar.gz").read_bytes()).hexdigest()
    archives.fetch_cifar10(tmp_path / "dl", url=url + "c.tar.gz", checksum=md5)
    data, _ = resolve(f"cifar10:{tmp_path / 'dl'}")
    assert len(data) == 20
