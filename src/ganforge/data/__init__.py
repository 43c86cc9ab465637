"""Data specs (DESIGN §6): `name` or `name:ARG`, resolved by a registry to (Data, DataInfo)."""
from __future__ import annotations

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Batches, Data, DataInfo
from .images import resize_uint8, set_channels

__all__ = ["Batches", "Data", "DataInfo", "resolve", "DATASETS"]


@DATASETS.register("toy")
def _toy(arg, **kw):
    from .toy import TOY_NAMES, load_toy
    if arg not in TOY_NAMES:
        raise GanforgeError(f"unknown toy data {arg!r}; use one of " + ", ".join(f"toy:{n}" for n in TOY_NAMES))
    return load_toy(arg, kw["split"])


@DATASETS.register("csv")
def _csv(arg, **kw):
    from .tabular import load_csv
    return load_csv(arg)


@DATASETS.register("digits")
def _digits(arg, **kw):
    from .images import load_digits_data
    return load_digits_data(arg, kw["split"])


@DATASETS.register("folder")
def _folder(arg, **kw):
    from .images import load_folder
    return load_folder(arg, kw["resolution"], kw["channels"], kw["skip_bad"])


@DATASETS.register("mnist")
def _mnist(arg, **kw):
    from .archives import load_mnist
    return load_mnist(arg, kw["split"], kw["download"])


@DATASETS.register("cifar10")
def _cifar10(arg, **kw):
    from .archives import load_cifar10
    return load_cifar10(arg, kw["split"], kw["download"])


NEEDS_ARG = {"csv": "csv:PATH", "folder": "folder:PATH", "mnist": "mnist:DIR", "cifar10": "cifar10:DIR"}


def resolve(spec: str, *, split: str = "train", resolution: int | None = None, channels: int | None = None,
            skip_bad: bool = False, download: bool = False) -> tuple[Data, DataInfo]:
    """Load a data spec. Images come back at `resolution` (native when None) with `channels` (native when None)."""
    name, _, arg = spec.partition(":")
    loader = DATASETS.get_or_fail(name)
    if name in NEEDS_ARG and not arg:
        raise GanforgeError(f"data spec {spec!r} needs a path: {NEEDS_ARG[name]}")
    data, info = loader(arg, split=split, resolution=resolution, channels=channels, skip_bad=skip_bad,
                        download=download)
    if info.kind == "image" and (resolution or channels):
        data.x = set_channels(resize_uint8(data.x, resolution or data.x.shape[-1]), channels)
        info.shape = tuple(data.x.shape[1:])
    return data, info


def _enroll_family_specs() -> None:
    """Families register their own data specs in data/specs_<family>.py; import them all."""
    import importlib
    import pkgutil

    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("specs_"):
            importlib.import_module(f"{__name__}.{m.name}")


_enroll_family_specs()
