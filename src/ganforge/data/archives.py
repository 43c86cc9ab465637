"""`mnist:DIR` (IDX files, gzipped or not) and `cifar10:DIR` (python pickle batches), with opt-in download.

Downloads are written to a temporary file, checked against the published MD5 and only then renamed into
place, so an interrupted or tampered download never leaves a file that looks complete. CIFAR's pickles are
read with an unpickler that only admits numpy arrays: a malicious file cannot run code.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..download import fetch
from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, need_arg
from .images import image_info

MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def download(url: str, dest: Path, md5sum: str | None) -> Path:
    """One archive file, MD5-checked (the checksums the data sets publish), atomically (ganforge.download)."""
    return fetch(url, dest, algorithm="md5", expected=md5sum, what=dest.name,
                 fix=f"fetch the file by hand into {dest.parent}")


# -- MNIST --------------------------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:   # 0x08 = unsigned byte data
        raise GanforgeError(f"{str(path)!r} is not an IDX file of unsigned bytes; re-download it")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise GanforgeError(f"{str(path)!r} is truncated ({data.size} values, header says {dims}); re-download it")
    return data.reshape(dims)


def fetch_mnist(root: Path, urls=None, checksums=None) -> None:
    urls, checksums = urls or MNIST_URLS, checksums or MNIST_MD5
    for name, sum_ in checksums.items():
        if (root / name).exists() or (root / name[:-3]).exists():
            continue
        errors = []
        for base in urls:
            try:
                download(base + name, root / name, sum_)
                break
            except GanforgeError as e:
                errors.append(str(e))
        else:
            raise GanforgeError("; ".join(errors))


def load_mnist(path: str, split: str, download_ok: bool) -> tuple[Data, DataInfo]:
    root = Path(path)
    if download_ok:
        fetch_mnist(root)
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for kind, tag in (("images", "idx3"), ("labels", "idx1")):
        name = f"{prefix}-{kind}-{tag}-ubyte"
        for cand in (root / name, root / (name + ".gz"), root / "raw" / name, root / "raw" / (name + ".gz")):
            if cand.is_file():
                found[kind] = cand
                break
        else:
            raise GanforgeError(f"mnist folder {path!r} lacks {name}[.gz]; put the four IDX files there, "
                                f"or set download=true to fetch them")
    x = torch.from_numpy(read_idx(found["images"]).copy())[:, None]
    y = torch.from_numpy(read_idx(found["labels"]).astype(np.int64))
    if len(x) != len(y):
        raise GanforgeError(f"mnist folder {path!r}: {len(x)} images but {len(y)} labels; re-download it")
    return Data(x, y), image_info(f"mnist:{path}", x, y, [str(k) for k in range(10)])


# -- CIFAR-10 -----------------------------------------------------------------------------------------------

class _ArraysOnly(pickle.Unpickler):
    """Admit only what numpy arrays need: CIFAR batches are dicts of bytes, lists and uint8 arrays."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_batch(path: Path) -> dict:
    try:
        return _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as e:
        raise GanforgeError(f"cannot read CIFAR-10 batch {str(path)!r} ({e}); re-download it") from None


def fetch_cifar10(root: Path, url=CIFAR10_URL, checksum=CIFAR10_MD5) -> None:
    if (root / "cifar-10-batches-py" / "test_batch").exists():
        return
    archive = download(url, root / "cifar-10-python.tar.gz", checksum)
    with tarfile.open(archive) as t:
        t.extractall(root, filter="data")   # "data" filter: no absolute paths, links or devices


def load_cifar10(path: str, split: str, download_ok: bool) -> tuple[Data, DataInfo]:
    root = Path(path)
    if download_ok:
        fetch_cifar10(root)
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (base / n).is_file()]
    if missing:
        raise GanforgeError(f"cifar10 folder {path!r} lacks {', '.join(missing)}; extract "
                            f"cifar-10-python.tar.gz there, or set download=true to fetch it")
    xs, ys = [], []
    for n in names:
        b = _read_batch(base / n)
        xs.append(np.asarray(b[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(b[b"labels"], dtype=np.int64))
    x, y = torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
    return Data(x, y), image_info(f"cifar10:{path}", x, y, CIFAR10_NAMES)


@DATASETS.register("mnist")
def _mnist(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("mnist", arg, "mnist:DIR")
    return load_mnist(arg, split, download)


@DATASETS.register("cifar10")
def _cifar10(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("cifar10", arg, "cifar10:DIR")
    return load_cifar10(arg, split, download)
